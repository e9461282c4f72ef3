"""The nn module classes."""
from .activation import GELU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .dropout import Dropout
from .flatten import Flatten
from .linear import Identity, Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss
from .module import Module
from .normalization import LayerNorm, RMSNorm
from .sparse import Embedding, EmbeddingBag

__all__ = ["Module", "Linear", "Identity", "GELU", "ReLU", "Tanh", "Sigmoid", "SiLU", "Softmax",
           "LogSoftmax", "Sequential", "ModuleList", "ModuleDict", "ParameterList",
           "ParameterDict", "Dropout", "Flatten", "LayerNorm", "RMSNorm", "Embedding",
           "EmbeddingBag", "MSELoss", "L1Loss", "SmoothL1Loss", "BCEWithLogitsLoss",
           "CrossEntropyLoss", "NLLLoss"]
