"""Test cases run by tests/testing/test_multiprocess.py in a sub-pytest (some fail on purpose)."""
import json
import os
import sys
import time
import unittest
from datetime import timedelta

import shardopt.distributed as dist
from shardopt.testing import MultiProcessTestCase, run_tests, skip_if_lt_x_gpu

OUT = os.environ.get("HARNESS_OUT", "/tmp")


class Ranks(MultiProcessTestCase):
    def test_all_ranks_run(self):
        # file_name is the per-test rendezvous file; MASTER_PORT a free port per test.
        store = dist.FileStore(self.file_name, self.world_size)
        store.set(f"rank{self.rank}", str(os.getpid()))
        store.wait([f"rank{r}" for r in range(self.world_size)], timedelta(seconds=20))
        pids = {int(store.get(f"rank{r}")) for r in range(self.world_size)}
        self.assertEqual(len(pids), self.world_size)
        self.assertEqual(os.environ["MASTER_ADDR"], "127.0.0.1")
        with open(os.path.join(OUT, f"ranks_{self.rank}.json"), "w") as f:
            json.dump({"rank": self.rank, "pid": os.getpid(), "launched": "RANK" in os.environ}, f)


class SpawnOnly(MultiProcessTestCase):
    def test_tcp_store_on_master_port(self):
        s = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          self.world_size, self.rank == 0, timeout=timedelta(seconds=20))
        self.assertEqual(s.add("n", 1) <= self.world_size, True)
        s.set(f"d{self.rank}", "1")
        s.wait([f"d{r}" for r in range(self.world_size)])
        s.set(f"x{self.rank}", "1")
        if self.rank == 0:
            s.wait([f"x{r}" for r in range(self.world_size)])


class TwoRanks(MultiProcessTestCase):
    @property
    def world_size(self):
        return 2

    def setUp(self):
        super().setUp()
        self._spawn_processes()  # torch style: explicit spawn in setUp

    def test_two(self):
        self.assertIn(self.rank, (0, 1))


class Faults(MultiProcessTestCase):
    TIMEOUT = 20

    @property
    def world_size(self):
        return 3

    def test_rank_raises(self):
        if self.rank == 2:
            raise ValueError("boom on rank two")
        if self.rank == 0:  # a consequence, later: the report must still lead with rank 2
            time.sleep(0.3)
            raise RuntimeError("follow-up on rank zero")
        time.sleep(30)  # the harness must not wait for this

    def test_rank_exits(self):
        if self.rank == 1:
            os._exit(3)


class Skips(MultiProcessTestCase):
    @property
    def world_size(self):
        return 2

    def test_skip_in_rank(self):
        raise unittest.SkipTest("no thanks")

    @skip_if_lt_x_gpu(64)
    def test_gpu_skip(self):
        pass

    def test_mixed_skip(self):
        if self.rank == 0:
            raise unittest.SkipTest("only rank 0")


class Hang(MultiProcessTestCase):
    TIMEOUT = 2

    @property
    def world_size(self):
        return 2

    def test_hang_times_out(self):
        time.sleep(60)

if __name__ == "__main__":
    run_tests()
