"""shardopt.optim: torch.optim's Optimizer, SGD, Adam and AdamW over fused C/CUDA kernels."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam
from .adamw import AdamW

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
