"""shardopt.nn: Module, Parameter, Linear, GELU, ReLU, Sequential, MSELoss, functional, init."""
from . import functional, init  # noqa: F401
from .modules import GELU, Identity, Linear, Module, MSELoss, ReLU, Sequential
from .parameter import Parameter

__all__ = ["Module", "Parameter", "Linear", "Identity", "GELU", "ReLU", "Sequential", "MSELoss",
           "functional", "init"]


def __getattr__(name):
    # nn.parallel needs shardopt.distributed, which is imported after nn: load it on first use
    if name == "parallel":
        import importlib  # noqa: PLC0415
        return importlib.import_module(".parallel", __name__)
    raise AttributeError(f"module 'shardopt.nn' has no attribute {name!r}")
