"""unique: distinct values ascending, inverse indices and counts, against NumPy's
np.unique (same contract for dim=None), on ints, floats, bool, empty and 0-d inputs."""
import numpy as np
import pytest

import shardopt as so


CASES = [np.array([4, 1, 4, 4, 0, 1, 9]), np.array([[2.5, -1.0], [2.5, 7.0]]),
         np.array([True, False, True]), np.array([], dtype=np.int64), np.array(3),
         np.random.default_rng(0).integers(-5, 5, size=(6, 5, 4))]


@pytest.mark.parametrize("k", range(len(CASES)))
def test_unique_matches_numpy(k):
    a = CASES[k]
    x = so.from_numpy(a)
    vals, inv, cnt = np.unique(a, return_inverse=True, return_counts=True)
    out = so.unique(x)
    assert out.dtype == x.dtype and out.numpy().tolist() == vals.tolist()
    out, inverse, counts = so.unique(x, return_inverse=True, return_counts=True)
    assert out.numpy().tolist() == vals.tolist()
    assert tuple(inverse.shape) == a.shape and inverse.dtype == so.int64
    assert inverse.numpy().reshape(-1).tolist() == inv.reshape(-1).tolist()
    assert counts.dtype == so.int64 and counts.numpy().tolist() == cnt.tolist()
    # the inverse rebuilds the input; the method spelling is the same function
    assert np.array_equal(out.numpy()[inverse.numpy()], a)
    _, c2 = x.unique(sorted=False, return_counts=True)
    assert c2.numpy().tolist() == cnt.tolist()


def test_unique_errors():
    with pytest.raises(TypeError, match="argument 'input'"):
        so.unique([1, 2])
    with pytest.raises(NotImplementedError, match="dim="):
        so.unique(so.tensor([[1, 1]]), dim=0)
