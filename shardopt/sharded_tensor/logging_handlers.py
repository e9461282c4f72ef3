"""The log handlers the sharding layer's logger may write to, by destination name
(torch.distributed._shard.sharded_tensor.logging_handlers).  Only "default" (a
NullHandler: nothing is emitted unless a user installs another handler) exists."""
import logging
from typing import Dict

__all__: list = []

_log_handlers: Dict[str, logging.Handler] = {
    "default": logging.NullHandler(),
}
