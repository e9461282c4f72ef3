"""Extra check against torch.optim itself, when PyTorch is importable (never a dependency).

Same initial params and gradients, 20 steps, float32 and float64, every option combination,
for torch's single-tensor (foreach=False), foreach and fused CPU implementations.  torch's
implementations differ from each other by rounding only, and so do we: float32 within
rtol 1e-5 / atol 1e-6, float64 within 1e-12.
"""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shardopt.optim import SGD, Adam, AdamW  # noqa: E402

from _optim_ref import to_numpy, to_tensor  # noqa: E402

SGD_CASES = [dict(momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x)
             for m, d, n, w, x in itertools.product([0.0, 0.9], [0.0, 0.2], [False, True],
                                                    [0.0, 0.05], [False, True])
             if not (n and (m == 0 or d != 0))]
ADAM_CASES = [dict(amsgrad=a, weight_decay=w, maximize=x)
              for a, w, x in itertools.product([False, True], [0.0, 0.1], [False, True])]


def _compare(ours_cls, torch_cls, kw, dtype, impl):
    rng = np.random.default_rng(0)
    shapes = [(8, 5), (13,), (1,)]
    p0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = [to_tensor(x) for x in p0]
    theirs = [torch.tensor(x) for x in p0]
    extra = {"foreach": False} if impl == "single" else {"foreach": True} if impl == "foreach" \
        else {"fused": True}
    o1 = ours_cls(ours, lr=1e-2, **kw)
    o2 = torch_cls(theirs, lr=1e-2, **kw, **extra)
    for _ in range(20):
        for a, b in zip(ours, theirs):
            g = rng.standard_normal(b.shape).astype(dtype)
            a.grad = to_tensor(g)
            b.grad = torch.tensor(g)
        o1.step()
        o2.step()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(to_numpy(a), b.detach().numpy(), **tol)
    sd1, sd2 = o1.state_dict(), o2.state_dict()
    assert sd1["param_groups"][0].keys() == sd2["param_groups"][0].keys()
    for k, st in sd2["state"].items():
        assert set(st) == set(sd1["state"][k])
        for name, t in st.items():
            np.testing.assert_allclose(to_numpy(sd1["state"][k][name]), t.numpy(), **tol)


@pytest.mark.parametrize("impl", ["single", "foreach", "fused"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_vs_torch(kw, dtype, impl):
    _compare(SGD, torch.optim.SGD, kw, dtype, impl)


@pytest.mark.parametrize("impl", ["single", "foreach", "fused"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("which", ["adam", "adamw"])
@pytest.mark.parametrize("kw", ADAM_CASES)
def test_adam_vs_torch(kw, which, dtype, impl):
    ours, theirs = (Adam, torch.optim.Adam) if which == "adam" else (AdamW, torch.optim.AdamW)
    _compare(ours, theirs, kw, dtype, impl)
