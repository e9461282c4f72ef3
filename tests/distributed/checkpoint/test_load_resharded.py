"""Save on 4 ranks, load on 1, 2, 3 and 4 ranks into row-, column-, enumerable-sharded and
replicated parameters with their Adam state, then resume training: the loaded values must be
the saved ones bit for bit, and the resumed run must match the uninterrupted 4-rank run."""
import os
import shutil
import tempfile

import numpy as np

from shardopt.distributed.checkpoint import load
from shardopt.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from shardopt.testing import MultiProcessTestCase, with_comms

from _ckpt_net import DIR_ENV, LAYOUTS, STEPS, build, flat_state, local_pieces, run_saver, train

_ckpt = {}


def setUpModule():
    d = tempfile.mkdtemp(prefix="shardopt-ckpt-test-")
    run_saver(d)
    _ckpt["dir"] = d
    os.environ[DIR_ENV] = d


def tearDownModule():
    shutil.rmtree(_ckpt.pop("dir", ""), ignore_errors=True)


class _LoadAndResume(MultiProcessTestCase):
    __test__ = False
    WORLD = 4

    @property
    def world_size(self):
        return self.WORLD

    def _check(self, layout):
        d = os.environ[DIR_ENV]
        ref = np.load(os.path.join(d, "reference.npz"))
        fin = np.load(os.path.join(d, "final.npz"))
        model, opt = build(LAYOUTS[layout], self.world_size, seed=7)  # other values
        msd, osd = get_state_dict(model, opt)
        load({"model": msd, "optim": osd}, checkpoint_id=os.path.join(d, "ckpt"))
        set_state_dict(model, opt, model_state_dict=msd, optim_state_dict=osd)
        # every value of this rank is the saved one, exactly
        got = flat_state(*get_state_dict(model, opt))
        self.assertEqual(sorted(got), sorted(ref.files))
        for key, value in got.items():
            for sl, arr in local_pieces(value):
                np.testing.assert_array_equal(arr, ref[key][sl], err_msg=key)
        self.assertEqual(opt.param_groups[0]["lr"], 0.05)
        # resumed training continues exactly as the uninterrupted 4-rank run did
        train(model, opt, STEPS)
        for key, value in flat_state(*get_state_dict(model, opt)).items():
            for sl, arr in local_pieces(value):
                np.testing.assert_allclose(arr, fin[key][sl], rtol=1e-6, atol=1e-7,
                                           err_msg=key)

    @with_comms(backend="gloo")
    def test_same(self):
        self._check("same")

    @with_comms(backend="gloo")
    def test_swapped(self):
        self._check("swapped")

    @with_comms(backend="gloo")
    def test_enumerable(self):
        self._check("enumerable")

    @with_comms(backend="gloo")
    def test_replicated(self):
        self._check("replicated")


class TestLoadOn4(_LoadAndResume):
    __test__ = True
    WORLD = 4


class TestLoadOn3(_LoadAndResume):
    __test__ = True
    WORLD = 3


class TestLoadOn2(_LoadAndResume):
    __test__ = True
    WORLD = 2


class TestLoadOn1(_LoadAndResume):
    __test__ = True
    WORLD = 1
