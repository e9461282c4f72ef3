"""The nn module classes."""
from .activation import GELU, ReLU
from .container import Sequential
from .linear import Identity, Linear
from .loss import MSELoss
from .module import Module

__all__ = ["Module", "Linear", "Identity", "GELU", "ReLU", "Sequential", "MSELoss"]
