"""The data-file writer: O_DIRECT from aligned tensor memory, through the staging buffer for
small or unaligned chunks, the ordinary-write fallback; every layout reads back exactly."""
import os
import shutil
import tempfile
import unittest
from unittest import mock

import numpy as np

import shardopt as so
from shardopt.distributed.checkpoint import load, save
from shardopt.distributed.checkpoint.metadata import read_metadata


def _state(rs):
    big = so.empty(1 << 21, dtype=so.float32)       # 8 MiB: page-aligned by the allocator
    big.copy_(so.from_numpy(rs.standard_normal(1 << 21).astype(np.float32)))
    odd = so.empty((1 << 18) + 3, dtype=so.float64)  # 2 MiB + 24 bytes: an unaligned tail
    odd.copy_(so.from_numpy(rs.standard_normal((1 << 18) + 3)))
    return {"small": so.from_numpy(rs.standard_normal(5).astype(np.float32)),
            "big": big,
            "unaligned": so.from_numpy(rs.standard_normal((700, 1031)).astype(np.float32)),
            "odd": odd,
            "scalar": so.tensor(3.0),
            "ints": so.from_numpy(rs.randint(0, 100, size=(9000,)).astype(np.int64))}


class TestDataFile(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="shardopt-ckpt-fs-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def _round_trip(self):
        ref = _state(np.random.RandomState(0))
        ck = os.path.join(self.dir, "ck")
        save(ref, checkpoint_id=ck)
        md = read_metadata(ck)
        # the file is exactly as long as its last chunk's end (padding only between chunks)
        ends = [c.byte_offset + c.nbytes for t in md.tensors.values() for c in t.chunks]
        self.assertEqual(os.path.getsize(os.path.join(ck, "data-0.bin")), max(ends))
        got = {k: so.zeros(tuple(v.shape), dtype=v.dtype) for k, v in ref.items()}
        load(got, checkpoint_id=ck)
        for k in ref:
            np.testing.assert_array_equal(got[k].numpy(), ref[k].numpy(), err_msg=k)
        shutil.rmtree(ck)
        return md

    def test_direct(self):
        md = self._round_trip()
        big = md.tensors["big"].chunks[0]
        self.assertEqual(so.empty(1 << 21).data_ptr() % 4096, 0)  # the direct path's premise
        self.assertEqual(big.byte_offset % 4096, 0)

    def test_buffered_fallback(self):
        with mock.patch.dict(os.environ, {"SHARDOPT_CKPT_NO_DIRECT": "1"}):
            md = self._round_trip()
        offs = sorted((c.byte_offset, c.nbytes) for t in md.tensors.values() for c in t.chunks)
        # back to back, no padding
        for (o1, n1), (o2, _) in zip(offs, offs[1:]):
            self.assertEqual(o1 + n1, o2)
