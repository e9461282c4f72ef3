"""shardopt.optim: torch.optim's Optimizer, SGD, Adam, AdamW, RMSprop and Adagrad over fused
C/CUDA kernels, and the learning-rate schedulers (shardopt.optim.lr_scheduler)."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam
from .adamw import AdamW
from .rmsprop import RMSprop
from .adagrad import Adagrad
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
