"""shardopt.testing._ranks: run a callable (forked ranks) or a test method (spawned ranks) on
N ranks of a Gloo group; a failing rank's traceback and a skip reach the caller."""
import unittest

import pytest

import shardopt
import shardopt.distributed as dist
from shardopt.testing._ranks import run_on_ranks


def _sum_of_ranks(rank):
    t = shardopt.tensor([float(rank)])
    dist.all_reduce(t)
    assert dist.get_rank() == rank and t.tolist() == [3.0], t.tolist()


def _rank_two_fails(rank):
    if rank == 2:
        raise KeyError("rank two broke")
    dist.barrier()


def _everyone_skips(rank):
    raise unittest.SkipTest(f"nothing to do on rank {rank}")


def test_callable_runs_on_every_rank():
    run_on_ranks(_sum_of_ranks, 3)


def test_first_failure_is_reported():
    with pytest.raises(AssertionError, match="rank 2 of 3 failed(.|\n)*rank two broke"):
        run_on_ranks(_rank_two_fails, 3, timeout=30)


def test_skip_reaches_the_caller():
    with pytest.raises(unittest.SkipTest, match="nothing to do on rank"):
        run_on_ranks(_everyone_skips, 2)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_world_size_is_checked(bad):
    with pytest.raises(ValueError, match="world_size must be a positive int"):
        run_on_ranks(_sum_of_ranks, bad)
