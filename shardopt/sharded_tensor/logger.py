"""The sharding layer's logger (torch.distributed._shard.sharded_tensor.logger).

``_get_or_create_logger()`` returns the logger named ``sharding-spec-<handler class>``
(DEBUG level, not propagating to the root logger) writing to the "default" handler of
``logging_handlers``."""
import logging
from typing import Tuple

from .logging_handlers import _log_handlers

__all__: list = []

_FORMAT = ("%(asctime)s %(filename)s:%(lineno)s %(levelname)s p:%(processName)s "
           "t:%(threadName)s: %(message)s")


def _get_logging_handler(destination: str = "default") -> Tuple[logging.Handler, str]:
    """(handler, its class name) for a destination of ``_log_handlers``."""
    handler = _log_handlers[destination]
    return handler, type(handler).__name__


def _get_or_create_logger() -> logging.Logger:
    """The sharding layer's logger, its handler attached once however often it is asked
    for."""
    handler, handler_name = _get_logging_handler()
    logger = logging.getLogger(f"sharding-spec-{handler_name}")
    logger.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.propagate = False
    if handler not in logger.handlers:
        logger.addHandler(handler)
    return logger
