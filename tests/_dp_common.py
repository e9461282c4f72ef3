"""Shared pieces of the data-parallel tests (tests/nn/parallel, tests/distributed/optim): a
model with uneven parameter sizes, per-step batches every rank can derive, and the
single-process reference run on the whole batch."""
import numpy as np

import shardopt as so
from shardopt import nn

# per-rank batch; the reference trains on the concatenation of every rank's batch
LOCAL_BATCH = 3
D_IN, D_HID, D_OUT = 7, 11, 3


class Net(nn.Module):
    """Uneven parameter sizes (77, 11, 33, 3, 5) so buckets and partitions split unevenly."""

    def __init__(self, seed=0):
        super().__init__()
        so.manual_seed(seed)
        self.fc1 = nn.Linear(D_IN, D_HID)
        self.fc2 = nn.Linear(D_HID, D_OUT)
        self.scale = nn.Parameter(so.rand(5))

    def forward(self, x):
        h = self.fc1(x).relu()
        return self.fc2(h) * self.scale[:D_OUT].reshape(1, D_OUT)


def batch(step, world, rank=None):
    """(x, y) of the whole step (rank None) or of one rank's slice of it."""
    rs = np.random.RandomState(100 + step)
    x = rs.standard_normal((LOCAL_BATCH * world, D_IN)).astype(np.float32)
    y = rs.standard_normal((LOCAL_BATCH * world, D_OUT)).astype(np.float32)
    if rank is not None:
        sl = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        x, y = x[sl], y[sl]
    return so.from_numpy(np.ascontiguousarray(x)), so.from_numpy(np.ascontiguousarray(y))


def loss_fn(out, y):
    return ((out - y) ** 2).mean()


def reference(world, steps, make_opt, seed=0):
    """Parameters (numpy, by name) after single-process training on the full batches."""
    model = Net(seed)
    opt = make_opt(model.parameters())
    for step in range(steps):
        x, y = batch(step, world)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return {n: p.detach().numpy().copy() for n, p in model.named_parameters()}


def params_np(module):
    return {n: p.detach().numpy().copy() for n, p in module.named_parameters()}


def assert_close_params(tc, got, want, rtol=1e-5, atol=1e-6):
    tc.assertEqual(sorted(got), sorted(want))
    for n in want:
        np.testing.assert_allclose(got[n], want[n], rtol=rtol, atol=atol, err_msg=n)
