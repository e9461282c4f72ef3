"""kill -9 of one rank at named points of a 4-rank save: the previous checkpoint stays
loadable (or the new one is there, complete), a half-written directory is refused, and the
next successful save leaves no temp directory."""
import glob
import os
import shutil
import signal
import tempfile

import numpy as np

import shardopt as so
import shardopt.distributed as dist
from shardopt.distributed.checkpoint import load, save
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.sharded_tensor import empty as sharded_empty
from shardopt.testing import MultiProcessTestCase, with_comms

SHAPE = (64, 33)


def _state(value, world=None):
    """{"w": row-sharded (or full) 64x33 filled with value, "b": Tensor, "step": int}."""
    if world is None:
        w = so.full(SHAPE, float(value))
    else:
        spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(world)])
        w = sharded_empty(spec, *SHAPE)
        for s in w.local_shards():
            s.tensor.fill_(float(value))
    return {"w": w, "b": so.full((5,), float(value)), "step": int(value)}


def _values(path):
    sd = _state(0)
    load(sd, checkpoint_id=path)
    w, b = sd["w"].numpy(), sd["b"].numpy()
    vals = set(np.unique(w).tolist()) | set(np.unique(b).tolist()) | {float(sd["step"])}
    assert len(vals) == 1, f"a torn checkpoint: values {vals}"
    return vals.pop()


class TestKillDuringSave(MultiProcessTestCase):
    TIMEOUT = 60

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="shardopt-ckpt-kill-")
        os.environ["SHARDOPT_CKPT_KILL_DIR"] = self.dir

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.environ.pop("SHARDOPT_CKPT_FAULT", None)
        os.environ.pop("SHARDOPT_CKPT_NO_EXCHANGE", None)
        super().tearDown()

    # -- parent: the harness's join, then the checks
    def _check_return_codes(self, messages, timed_out, first_bad):
        self._codes = [p.exitcode for p in self.processes]
        self._messages = messages

    def _join_processes(self, fn=None):
        super()._join_processes(fn)
        point, victim, may_be_new = self._plan()
        errors = [m[1] for m in self._messages.values() if m[0] == "error"]
        self.assertEqual(self._codes[victim], -signal.SIGKILL,
                         f"rank {victim} was to be killed at {point}; codes {self._codes}, "
                         f"errors {errors}")
        ck = os.path.join(self.dir, "ckpt")
        got = _values(ck)
        self.assertIn(got, (1.0, 2.0) if may_be_new else (1.0,), f"killed at {point}")
        for leftover in glob.glob(ck + ".tmp-*"):
            if not os.path.exists(os.path.join(leftover, "metadata.json")):
                with self.assertRaisesRegex(ValueError, "metadata.json is missing"):
                    load(_state(0), checkpoint_id=leftover)
        # the next successful save (here a single process) commits and cleans up
        os.environ.pop("SHARDOPT_CKPT_FAULT", None)
        save(_state(3), checkpoint_id=ck)
        self.assertEqual(_values(ck), 3.0)
        self.assertEqual(sorted(os.listdir(self.dir)), ["ckpt"])

    def _plan(self):
        name = self._testMethodName
        return {
            "test_kill_after_mkdir": ("after_mkdir", 2, False),
            "test_kill_mid_write": ("mid_write", 1, False),
            "test_kill_mid_write_rank0": ("mid_write", 0, False),
            "test_kill_after_fsync": ("after_fsync", 3, False),
            "test_kill_rank0_before_metadata": ("after_barrier", 0, False),
            "test_kill_after_barrier": ("after_barrier", 2, True),
            "test_kill_after_metadata": ("after_metadata", 0, False),
            "test_kill_after_exchange": ("after_exchange", 0, True),
            "test_kill_between_renames": ("after_aside", 0, True),
        }[name]

    # -- ranks
    @with_comms(backend="gloo")
    def _save_then_die(self):
        point, victim, _ = self._plan()
        ck = os.path.join(os.environ["SHARDOPT_CKPT_KILL_DIR"], "ckpt")
        save(_state(1, self.world_size), checkpoint_id=ck)
        dist.barrier()
        os.environ["SHARDOPT_CKPT_FAULT"] = f"{point}:{victim}"
        if point == "after_aside":
            os.environ["SHARDOPT_CKPT_NO_EXCHANGE"] = "1"
        save(_state(2, self.world_size), checkpoint_id=ck)
        if self.rank == victim:
            raise AssertionError(f"rank {victim} survived {point}")
        dist.barrier()  # the victim is dead: the others block here until stopped

    def test_kill_after_mkdir(self):
        self._save_then_die()

    def test_kill_mid_write(self):
        self._save_then_die()

    def test_kill_mid_write_rank0(self):
        self._save_then_die()

    def test_kill_after_fsync(self):
        self._save_then_die()

    def test_kill_rank0_before_metadata(self):
        self._save_then_die()

    def test_kill_after_barrier(self):
        self._save_then_die()

    def test_kill_after_metadata(self):
        self._save_then_die()

    def test_kill_after_exchange(self):
        self._save_then_die()

    def test_kill_between_renames(self):
        self._save_then_die()
