"""Bad checkpoints and bad state dicts: ValueError naming the key or the path, on every
rank; corrupted and truncated files are refused."""
import json
import os
import shutil
import tempfile
import unittest

import numpy as np

import shardopt as so
import shardopt.distributed as dist
from shardopt.distributed.checkpoint import load, save
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.sharded_tensor import empty as sharded_empty
from shardopt.testing import MultiProcessTestCase, with_comms


def _sd(seed=0):
    rs = np.random.RandomState(seed)
    return {"model": {"w": so.from_numpy(rs.standard_normal((6, 5)).astype(np.float32)),
                      "i": so.from_numpy(np.arange(4, dtype=np.int64))},
            "meta": {"epoch": 4, "betas": (0.9, 0.99), "name": "run", "lr": float("inf")}}


class TestSingleProcess(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="shardopt-ckpt-err-")
        self.ck = os.path.join(self.dir, "ck")
        save(_sd(), checkpoint_id=self.ck)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_round_trip_values_and_objects(self):
        sd = _sd(1)
        sd["meta"] = {"epoch": 0, "betas": None, "name": "", "lr": 0.0}
        load(sd, checkpoint_id=self.ck)
        ref = _sd()
        np.testing.assert_array_equal(sd["model"]["w"].numpy(), ref["model"]["w"].numpy())
        np.testing.assert_array_equal(sd["model"]["i"].numpy(), np.arange(4))
        self.assertEqual(sd["meta"], ref["meta"])

    def test_missing_key(self):
        sd = _sd()
        sd["model"]["extra"] = so.zeros(2)
        with self.assertRaisesRegex(ValueError, r"missing key\(s\).*'model\.extra'"):
            load(sd, checkpoint_id=self.ck)

    def test_unexpected_key(self):
        sd = _sd()
        del sd["model"]["i"]
        with self.assertRaisesRegex(ValueError, r"unexpected key\(s\).*'model\.i'"):
            load(sd, checkpoint_id=self.ck)
        load(sd, checkpoint_id=self.ck, strict=False)

    def test_shape_and_dtype_mismatch(self):
        sd = _sd()
        sd["model"]["w"] = so.zeros(5, 6)
        with self.assertRaisesRegex(ValueError, r"size mismatch for 'model\.w'.*\(6, 5\)"):
            load(sd, checkpoint_id=self.ck)
        sd = _sd()
        sd["model"]["i"] = so.zeros(4, dtype=so.int32)
        with self.assertRaisesRegex(ValueError, r"dtype mismatch for 'model\.i'.*int64"):
            load(sd, checkpoint_id=self.ck)
        sd = _sd()
        sd["meta"]["epoch"] = so.zeros(1)
        with self.assertRaisesRegex(ValueError, r"'meta\.epoch' is a tensor in the state dict"):
            load(sd, checkpoint_id=self.ck)

    def test_not_a_checkpoint(self):
        with self.assertRaisesRegex(ValueError, "does not exist"):
            load(_sd(), checkpoint_id=os.path.join(self.dir, "nope"))
        os.mkdir(os.path.join(self.dir, "empty"))
        with self.assertRaisesRegex(ValueError, "metadata.json is missing"):
            load(_sd(), checkpoint_id=os.path.join(self.dir, "empty"))
        with self.assertRaisesRegex(TypeError, "checkpoint_id"):
            load(_sd(), checkpoint_id=3)
        with self.assertRaisesRegex(ValueError, "checkpoint_id"):
            save(_sd(), checkpoint_id=None)

    def test_truncated_and_missing_data_file(self):
        data = os.path.join(self.ck, "data-0.bin")
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) - 3)
        with self.assertRaisesRegex(ValueError, r"'data-0\.bin' has \d+ bytes.*truncated"):
            load(_sd(), checkpoint_id=self.ck)
        os.unlink(data)
        with self.assertRaisesRegex(ValueError, r"data file 'data-0\.bin' is missing"):
            load(_sd(), checkpoint_id=self.ck)

    def test_corrupted_data(self):
        data = os.path.join(self.ck, "data-0.bin")
        with open(data, "r+b") as f:
            f.seek(7)
            b = f.read(1)
            f.seek(7)
            f.write(bytes([b[0] ^ 0x10]))
        with self.assertRaisesRegex(ValueError, r"'model\.w'.*CRC-32.*corrupted"):
            load(_sd(), checkpoint_id=self.ck)

    def test_corrupted_metadata(self):
        mpath = os.path.join(self.ck, "metadata.json")
        doc = json.load(open(mpath))
        with open(mpath, "w") as f:
            f.write(json.dumps(doc)[:-20])
        with self.assertRaisesRegex(ValueError, "not valid JSON"):
            load(_sd(), checkpoint_id=self.ck)
        for mutate, msg in [
                (lambda d: d.update(version=99), "format version 99"),
                (lambda d: d["tensors"]["model.w"]["chunks"][0].update(sizes=[3, 5]),
                 "corrupted metadata"),
                (lambda d: d["tensors"]["model.w"]["chunks"][0].update(byte_offset=10 ** 9),
                 "points outside data file"),
                (lambda d: d["tensors"]["model.w"].pop("dtype"), "missing or malformed"),
                (lambda d: d["files"].update({"../x": {"size": 1}}), "not a plain file name")]:
            d = json.loads(json.dumps(doc))
            mutate(d)
            with open(mpath, "w") as f:
                json.dump(d, f)
            with self.assertRaisesRegex(ValueError, msg):
                load(_sd(), checkpoint_id=self.ck)


class TestErrorsOnEveryRank(MultiProcessTestCase):
    @property
    def world_size(self):
        return 2

    def _st(self, rows=8):
        spec = ChunkShardingSpec(dim=0, placements=["rank:0/cpu", "rank:1/cpu"])
        st = sharded_empty(spec, rows, 3)
        for s in st.local_shards():
            s.tensor.fill_(1.0)
        return st

    def _dir(self):
        obj = [tempfile.mkdtemp(prefix="shardopt-ckpt-err-") if self.rank == 0 else None]
        dist.broadcast_object_list(obj, src=0)
        return obj[0]

    @with_comms(backend="gloo")
    def test_mismatch_on_one_rank_raises_everywhere(self):
        d = self._dir()
        ck = os.path.join(d, "ck")
        save({"w": self._st(), "b": so.ones(2)}, checkpoint_id=ck)
        sd = {"w": self._st(), "b": so.ones(3 if self.rank == 1 else 2)}
        with self.assertRaisesRegex(ValueError, "size mismatch for 'b'" if self.rank == 1 else
                                    r"failed on rank 1: ValueError: .*size mismatch for 'b'"):
            load(sd, checkpoint_id=ck)
        with self.assertRaisesRegex(ValueError, "does not exist"):
            load(sd, checkpoint_id=ck + "-missing")
        # different keys on the ranks: refused by save, on both ranks, nothing written
        bad = {"w": self._st()} if self.rank == 1 else {"w": self._st(), "b": so.ones(2)}
        with self.assertRaisesRegex(ValueError, "differs from rank 0's at key"):
            save(bad, checkpoint_id=os.path.join(d, "ck2"))
        dist.barrier()
        if self.rank == 0:
            self.assertEqual(sorted(os.listdir(d)), ["ck"])
            shutil.rmtree(d)
