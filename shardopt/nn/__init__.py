"""shardopt.nn: modules, parameters, losses, functional and init (torch.nn's surface)."""
from . import functional, init  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all
from .parameter import Parameter
from . import utils  # noqa: E402,F401  (clip_grad_norm_, parameters_to_vector...)

__all__ = list(_modules_all) + ["Parameter", "functional", "init"]


def __getattr__(name):
    # nn.parallel needs shardopt.distributed, which is imported after nn: load it on first use
    if name == "parallel":
        import importlib  # noqa: PLC0415
        return importlib.import_module(".parallel", __name__)
    raise AttributeError(f"module 'shardopt.nn' has no attribute {name!r}")
