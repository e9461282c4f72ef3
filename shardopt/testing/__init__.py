"""shardopt.testing — torch's distributed test helpers under the same names.

``MultiProcessTestCase`` (one process per rank, default 4), ``with_comms``,
``requires_gloo``, ``requires_nccl``, ``skip_if_lt_x_gpu``, ``run_tests``, and a ``TestCase``
whose ``assertEqual`` compares Tensors by value with torch's dtype-aware tolerances.
"""
from ._comparison import TestCase, assert_equal
from ._multiprocess import (
    MAIN_PROCESS_RANK,
    TEST_SKIPS,
    MultiProcessTestCase,
    TestSkip,
    launched_rank,
    requires_gloo,
    requires_nccl,
    run_tests,
    skip_if_lt_x_gpu,
    tp_transports,
    with_comms,
)

__all__ = [
    "TestCase", "assert_equal", "MultiProcessTestCase", "MAIN_PROCESS_RANK", "TEST_SKIPS",
    "TestSkip", "launched_rank", "requires_gloo", "requires_nccl", "run_tests",
    "skip_if_lt_x_gpu", "tp_transports", "with_comms", "ShardedTensorTestBase",
]


def __getattr__(name):
    # ShardedTensorTestBase needs the sharding layer; import it only when asked for.
    if name == "ShardedTensorTestBase":
        from ._sharded import ShardedTensorTestBase
        return ShardedTensorTestBase
    raise AttributeError(f"module 'shardopt.testing' has no attribute {name!r}")
