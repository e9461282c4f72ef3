"""shardopt.nn: Module, Parameter, Linear, GELU, ReLU, Sequential, MSELoss, functional, init."""
from . import functional, init  # noqa: F401
from .modules import GELU, Identity, Linear, Module, MSELoss, ReLU, Sequential
from .parameter import Parameter
from . import utils  # noqa: E402,F401  (clip_grad_norm_, parameters_to_vector...)

__all__ = ["Module", "Parameter", "Linear", "Identity", "GELU", "ReLU", "Sequential", "MSELoss",
           "functional", "init"]
