"""shardopt.nn: Module, Parameter, Linear, GELU, ReLU, Sequential, MSELoss, functional, init."""
from . import functional, init  # noqa: F401
from .modules import GELU, Identity, Linear, Module, MSELoss, ReLU, Sequential
from .parameter import Parameter

__all__ = ["Module", "Parameter", "Linear", "Identity", "GELU", "ReLU", "Sequential", "MSELoss",
           "functional", "init"]
