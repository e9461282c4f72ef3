"""python -m shardopt.distributed.checkpoint consolidate / verify, and reading a checkpoint
with NumPy alone (the README's recipe)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import shardopt as so
from shardopt.distributed.checkpoint import save


def _numpy_only_read(ckpt, key):
    """The README's snippet: a full tensor from metadata.json + data files, NumPy only."""
    md = json.load(open(os.path.join(ckpt, "metadata.json")))
    t = md["tensors"][key]
    dt = {"float32": "<f4", "float64": "<f8", "int64": "<i8"}[t["dtype"]]
    out = np.empty(t["shape"], dtype=dt)
    for c in t["chunks"]:
        raw = np.fromfile(os.path.join(ckpt, c["file"]), dtype=dt,
                          count=c["nbytes"] // out.itemsize, offset=c["byte_offset"])
        out[tuple(slice(o, o + n) for o, n in zip(c["offsets"], c["sizes"]))] = \
            raw.reshape(c["sizes"])
    return out


class TestConsolidate(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="shardopt-ckpt-cons-")
        self.ck = os.path.join(self.dir, "ck")
        rs = np.random.RandomState(3)
        self.w = rs.standard_normal((7, 5)).astype(np.float32)
        self.bf = rs.standard_normal((3,)).astype(np.float32)
        save({"model": {"w": so.from_numpy(self.w), "n": so.arange(6),
                        "h": so.from_numpy(self.bf).to(so.bfloat16)},
              "epoch": 5}, checkpoint_id=self.ck)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self, *args):
        env = dict(os.environ)
        return subprocess.run([sys.executable, "-m", "shardopt.distributed.checkpoint", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    def test_npz(self):
        out = os.path.join(self.dir, "full.npz")
        r = self._run("consolidate", self.ck, out, "--progress")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("100.0%", r.stderr)
        z = np.load(out)
        np.testing.assert_array_equal(z["model.w"], self.w)
        np.testing.assert_array_equal(z["model.n"], np.arange(6))
        bf = so.from_numpy(self.bf).to(so.bfloat16).to(so.float32).numpy()
        np.testing.assert_array_equal(z["model.h"], bf)
        self.assertEqual(json.loads(str(z["__objects__"])), {"epoch": 5})

    def test_no_progress_when_not_a_tty(self):
        r = self._run("consolidate", self.ck, os.path.join(self.dir, "f.npz"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")

    def test_shardopt_save_file(self):
        out = os.path.join(self.dir, "full.pt")
        r = self._run("consolidate", self.ck, out)
        if not hasattr(so, "save"):  # shardopt.save arrives with the serialization module
            self.assertEqual(r.returncode, 1)
            self.assertIn("no shardopt.save", r.stderr)
            return
        self.assertEqual(r.returncode, 0, r.stderr)
        sd = so.load(out)
        np.testing.assert_array_equal(sd["model"]["w"].numpy(), self.w)
        self.assertEqual(sd["epoch"], 5)

    def test_verify_and_numpy_only_reader(self):
        r = self._run("verify", self.ck)
        self.assertEqual(r.returncode, 0, r.stderr)
        np.testing.assert_array_equal(_numpy_only_read(self.ck, "model.w"), self.w)
        with open(os.path.join(self.ck, "data-0.bin"), "r+b") as f:
            f.seek(3)
            f.write(b"\xff")
        r = self._run("verify", self.ck)
        self.assertEqual(r.returncode, 1)
        self.assertIn("CRC-32", r.stderr)
        r = self._run("consolidate", os.path.join(self.dir, "nope"), "x.npz")
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not exist", r.stderr)
