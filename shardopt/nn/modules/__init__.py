"""The nn module classes."""
from .activation import (CELU, ELU, GELU, SELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU,
                         LogSigmoid, LogSoftmax, Mish, ReLU, ReLU6, Sigmoid, SiLU, Softmax,
                         Softplus, Softsign, Tanh, Threshold, Hardshrink, Softshrink, Tanhshrink,
                         GLU, Softmin, PReLU)
from .batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .dropout import Dropout
from .flatten import Flatten, Unflatten
from .linear import Identity, Linear
from .distance import CosineSimilarity, PairwiseDistance
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss,
                   MarginRankingLoss, MSELoss, NLLLoss, SmoothL1Loss, SoftMarginLoss)
from .module import Module
from .normalization import LayerNorm, RMSNorm
from .sparse import Embedding, EmbeddingBag

__all__ = ["Module", "Linear", "Identity", "GELU", "ReLU", "Tanh", "Sigmoid", "SiLU", "Softmax",
           "LogSoftmax", "Sequential", "ModuleList", "ModuleDict", "ParameterList",
           "ParameterDict", "Dropout", "Flatten", "LayerNorm", "RMSNorm", "Embedding",
           "EmbeddingBag", "MSELoss", "L1Loss", "SmoothL1Loss", "BCEWithLogitsLoss",
           "CrossEntropyLoss", "NLLLoss"]
__all__ += ["LeakyReLU", "ELU", "SELU", "CELU", "Softplus", "Softsign", "Hardtanh", "ReLU6",
            "Hardsigmoid", "Hardswish", "LogSigmoid", "Mish", "HuberLoss", "BCELoss",
            "KLDivLoss", "MarginRankingLoss", "SoftMarginLoss", "CosineSimilarity",
            "PairwiseDistance", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm",
            "Threshold", "Hardshrink", "Softshrink", "Tanhshrink", "GLU", "Softmin", "PReLU",
            "Unflatten"]
