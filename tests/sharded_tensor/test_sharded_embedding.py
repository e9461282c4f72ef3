"""Sharded embedding / embedding_bag on 4 Gloo ranks: a ChunkShardingSpec weight on dim 0
(rows = ids) or dim 1 (embedding columns), the ids and the result replicated, or (the
``test_per_rank_*`` cases) different ids on each rank, each rank getting its own result and
the shards the gradient of the sum of the ranks' losses.

Reference: float64 NumPy lookups and bag reductions (sum with per_sample_weights, mean,
max; padding_idx left out; an empty bag is zeros), and the gradient of sum(out * g) written
out by hand, compared with each rank's local shard gradient.  Shapes: 10 rows over 4 ranks
(3, 3, 3, 1), 6 rows, 3 rows (a rank without a shard).

Most cases call the registered implementations (``sharded_embedding`` /
``sharded_embedding_bag``, what ShardedTensor.__torch_function__ runs for F.embedding /
F.embedding_bag) directly; ``test_modules_through_nn_functional`` goes through
nn.Embedding / nn.EmbeddingBag and ``shardopt.nn.functional``.
"""
import numpy as np

import shardopt as torch
import shardopt.distributed as dist
from shardopt import nn
from shardopt.sharded_tensor._sharded_embedding import (sharded_embedding,
                                                        sharded_embedding_bag)
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, with_comms

gloo = with_comms(init_rpc=False, backend="gloo")


def spec(dim):
    return ChunkShardingSpec(dim=dim, placements=[f"rank:{r}/cpu" for r in range(4)])


def sharded_weight(dim, rows, cols, seed, dtype=torch.float64):
    """(ShardedTensor parameter, its full value as float64 NumPy), the same on every rank."""
    w = np.random.RandomState(seed).standard_normal((rows, cols))
    holder = nn.Linear(cols, rows, dtype=dtype)
    with torch.no_grad():
        holder.weight.copy_(torch.from_numpy(w).to(dtype))
    torch.shard_parameter(holder, "weight", spec(dim))
    return holder.weight, w.astype(np.float32).astype(np.float64) if dtype == torch.float32 else w


def local_grad_and_slice(st):
    (shard,) = st.local_shards()
    o, s = shard.metadata.shard_offsets, shard.metadata.shard_sizes
    g = shard.tensor.grad
    return (np.zeros(s) if g is None else g.numpy().astype(np.float64),
            (slice(o[0], o[0] + s[0]), slice(o[1], o[1] + s[1])))


def emb(ids, st, **kw):
    return sharded_embedding(None, (ids, st), kw, st._process_group)


def bag(ids, st, **kw):
    return sharded_embedding_bag(None, (ids, st), kw, st._process_group)


def bag_reference(w, ids, offsets, mode, pad, psw):
    ends = list(offsets[1:]) + [len(ids)]
    out, dw, dpsw = [], np.zeros_like(w), np.zeros(len(ids))
    for s, e in zip(offsets, ends):
        sel = [k for k in range(s, e) if ids[k] != pad]
        if not sel:
            out.append(np.zeros(w.shape[1]))
            continue
        rows = w[ids[sel]] * (psw[sel][:, None] if psw is not None else 1.0)
        if mode == "sum":
            out.append(rows.sum(0))
            for k in sel:
                dw[ids[k]] += psw[k] if psw is not None else 1.0
                if psw is not None:
                    dpsw[k] = w[ids[k]].sum()
        elif mode == "mean":
            out.append(rows.mean(0))
            for k in sel:
                dw[ids[k]] += 1.0 / len(sel)
        else:
            out.append(rows.max(0))
            am = rows.argmax(0)
            for c in range(w.shape[1]):
                dw[ids[sel][am[c]], c] += 1.0
    return np.array(out), dw, dpsw


class TestShardedEmbedding(ShardedTensorTestBase):
    @gloo
    def test_embedding_forward_and_gradients(self):
        for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
            for dim in (0, 1):
                for rows, cols in ((10, 6), (6, 10), (3, 5)):
                    st, w = sharded_weight(dim, rows, cols, rows * cols + dim, dtype)
                    ids = np.random.RandomState(5).randint(0, rows, size=(3, 4))
                    pad = 2
                    out = emb(torch.from_numpy(ids), st, padding_idx=pad - rows)  # negative
                    self.assertEqual(tuple(out.shape), (3, 4, cols))
                    self.assertEqual(out.dtype, dtype)
                    np.testing.assert_allclose(out.detach().numpy(), w[ids], rtol=tol, atol=tol)
                    g = np.random.RandomState(7).standard_normal(w[ids].shape)
                    (out * torch.from_numpy(g).to(dtype)).sum().backward()
                    dw = np.zeros_like(w)
                    for (i, j), k in np.ndenumerate(ids):
                        if k != pad:
                            dw[k] += g[i, j]
                    got, sl = local_grad_and_slice(st)
                    np.testing.assert_allclose(got, dw[sl], rtol=tol, atol=tol)

    @gloo
    def test_embedding_max_norm_renorms_referenced_rows(self):
        for dim in (0, 1):
            st, w = sharded_weight(dim, 10, 6, 99)
            ids = np.array([[1, 3], [3, 8]])
            out = emb(torch.from_numpy(ids), st, max_norm=1.0)
            want = w.copy()
            for k in np.unique(ids):
                n = np.linalg.norm(want[k])
                if n > 1.0:
                    want[k] *= 1.0 / (n + 1e-7)
            np.testing.assert_allclose(out.detach().numpy(), want[ids], rtol=1e-12)
            (shard,) = st.local_shards()
            o, s = shard.metadata.shard_offsets, shard.metadata.shard_sizes
            # only looked-up rows changed, on the shard itself
            np.testing.assert_allclose(shard.tensor.detach().numpy(),
                                       want[o[0]:o[0] + s[0], o[1]:o[1] + s[1]], rtol=1e-12)

    @gloo
    def test_embedding_bag_modes(self):
        ids = np.array([1, 2, 7, 7, 9, 0, 3, 2, 5])
        offsets = np.array([0, 3, 3, 6])  # bag 1 is empty
        psw = np.random.RandomState(3).standard_normal(ids.shape)
        for dim in (0, 1):
            for mode in ("sum", "mean", "max"):
                st, w = sharded_weight(dim, 10, 6, 11 + dim)
                kw = dict(offsets=torch.from_numpy(offsets), mode=mode, padding_idx=2)
                p = None
                if mode == "sum":
                    p = torch.from_numpy(psw).requires_grad_(True)
                    kw["per_sample_weights"] = p
                out = bag(torch.from_numpy(ids), st, **kw)
                want, dw, dpsw = bag_reference(w, ids, offsets, mode, 2,
                                               psw if p is not None else None)
                np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-12, atol=1e-12)
                out.sum().backward()
                got, sl = local_grad_and_slice(st)
                np.testing.assert_allclose(got, dw[sl], rtol=1e-12, atol=1e-12)
                if p is not None:
                    np.testing.assert_allclose(p.grad.numpy(), dpsw, rtol=1e-12)
            # 2-D input (fixed-length bags) and include_last_offset
            st, w = sharded_weight(dim, 10, 6, 21 + dim)
            ids2 = np.array([[1, 4, 4], [9, 0, 2]])
            out = bag(torch.from_numpy(ids2), st, mode="mean")
            np.testing.assert_allclose(out.detach().numpy(), w[ids2].mean(1), rtol=1e-12)
            out = bag(torch.from_numpy(ids), st, offsets=torch.from_numpy(np.array([0, 4, 9])),
                      mode="sum", include_last_offset=True)
            np.testing.assert_allclose(out.detach().numpy(),
                                       np.stack([w[ids[:4]].sum(0), w[ids[4:]].sum(0)]),
                                       rtol=1e-12)

    @gloo
    def test_errors(self):
        st, _ = sharded_weight(0, 10, 6, 1)
        ids = torch.from_numpy(np.array([1, 2]))
        with self.assertRaisesRegex(ValueError, "Index out of range in Input"):
            emb(torch.from_numpy(np.array([1, 10])), st)
        with self.assertRaisesRegex(ValueError, "Index out of range in Input"):
            emb(torch.from_numpy(np.array([-1, 2])), st)
        with self.assertRaisesRegex(RuntimeError, 'flag on "scale_grad_by_freq" not supported'):
            emb(ids, st, scale_grad_by_freq=True)
        with self.assertRaisesRegex(RuntimeError, 'flag on "sparse" not supported'):
            emb(ids, st, sparse=True)
        with self.assertRaisesRegex(ValueError, '"max_norm" must be larger than zero!'):
            emb(ids, st, max_norm=-1.0)
        with self.assertRaisesRegex(TypeError, "input need to be torch.Tensor"):
            emb([1, 2], st)
        with self.assertRaisesRegex(ValueError, "offsets is required for 1D input"):
            bag(ids, st)
        with self.assertRaisesRegex(ValueError, "Input dimension needs to be exactly 1 dim"):
            bag(torch.from_numpy(np.array([[1, 2]])), st, offsets=torch.from_numpy(np.array([0])))
        with self.assertRaisesRegex(ValueError, "mode 'min' is not supported"):
            bag(ids, st, offsets=torch.from_numpy(np.array([0])), mode="min")
        with self.assertRaisesRegex(NotImplementedError, "only supported for mode='sum'"):
            bag(ids, st, offsets=torch.from_numpy(np.array([0])), mode="max",
                per_sample_weights=torch.ones((2,), dtype=torch.float64))
        with self.assertRaisesRegex(ValueError, 'offsets is required for flag "include_last_offset"'):
            bag(torch.from_numpy(np.array([[1, 2]])), st, include_last_offset=True)
        # nothing was left half-way in a collective
        t = torch.ones((1,))
        dist.all_reduce(t)
        self.assertEqual(t.item(), 4.0)

    @gloo
    def test_modules_through_nn_functional(self):
        # nn.Embedding / nn.EmbeddingBag after shard_parameter: model(ids) dispatches
        # F.embedding / F.embedding_bag to the sharded ops; outputs and shard gradients
        # equal an unsharded copy's
        from shardopt.nn import functional as F
        ids = torch.from_numpy(np.array([[1, 2, 3], [9, 1, 0]]))
        for dim in (0, 1):
            for make in (lambda: nn.Embedding(10, 6, padding_idx=1, dtype=torch.float64),
                         lambda: nn.EmbeddingBag(10, 6, mode="max", dtype=torch.float64)):
                torch.manual_seed(0)
                m, ref = make(), make()
                ref.load_state_dict(m.state_dict())
                torch.shard_parameter(m, "weight", spec(dim))
                y, yr = m(ids), ref(ids)
                np.testing.assert_allclose(y.detach().numpy(), yr.detach().numpy(), rtol=1e-12)
                (y * y).sum().backward()
                (yr * yr).sum().backward()
                got, sl = local_grad_and_slice(m.weight)
                np.testing.assert_allclose(got, ref.weight.grad.numpy()[sl], rtol=1e-12)
        st, w = sharded_weight(1, 10, 6, 4)
        out = F.embedding(ids, st)
        np.testing.assert_allclose(out.detach().numpy(), w[ids.numpy()], rtol=1e-12)


def rank_ids(r, rows, shape):
    """The ids rank r passes in the per-rank cases (every rank can rebuild any rank's)."""
    return np.random.RandomState(100 + r).randint(0, rows, size=shape)


class TestShardedEmbeddingPerRank(ShardedTensorTestBase):
    @gloo
    def test_per_rank_embedding_forward_gradient_and_max_norm(self):
        for dim in (0, 1):
            for rows, cols in ((10, 6), (3, 5)):
                for max_norm in (None, 1.5):
                    st, w = sharded_weight(dim, rows, cols, 7 * rows + dim)
                    # rank r: a (2, r + 1) batch (shapes may differ between ranks)
                    ids = [rank_ids(r, rows, (2, r + 1)) for r in range(4)]
                    kw = dict(padding_idx=1) if max_norm is None else dict(max_norm=max_norm)
                    out = emb(torch.from_numpy(ids[self.rank]), st, **kw)
                    want = w.copy()
                    if max_norm is not None:  # rows any rank looks up are renormed
                        for k in np.unique(np.concatenate([i.reshape(-1) for i in ids])):
                            n = np.linalg.norm(want[k])
                            if n > max_norm:
                                want[k] *= max_norm / (n + 1e-7)
                    self.assertEqual(tuple(out.shape), (2, self.rank + 1, cols))
                    np.testing.assert_allclose(out.detach().numpy(), want[ids[self.rank]],
                                               rtol=1e-12, atol=1e-12)
                    g = [np.random.RandomState(50 + r).standard_normal((2, r + 1, cols))
                         for r in range(4)]
                    (out * torch.from_numpy(g[self.rank])).sum().backward()
                    dw = np.zeros_like(w)  # d(sum_r L_r)/dw
                    for r in range(4):
                        for (i, j), k in np.ndenumerate(ids[r]):
                            if max_norm is not None or k != 1:
                                dw[k] += g[r][i, j]
                    got, sl = local_grad_and_slice(st)
                    np.testing.assert_allclose(got, dw[sl], rtol=1e-12, atol=1e-12)

    @gloo
    def test_per_rank_embedding_bag_modes_and_per_sample_weights(self):
        rows, cols = 10, 6
        for dim in (0, 1):
            for mode in ("sum", "mean", "max"):
                st, w = sharded_weight(dim, rows, cols, 31 + dim)
                # rank r: 1-D ids of length 5 + r in bags starting at offsets [0, 2, 2 + r]
                ids = [rank_ids(r, rows, (5 + r,)) for r in range(4)]
                offs = [np.array([0, 2, 2 + r]) for r in range(4)]
                psw = [np.random.RandomState(70 + r).standard_normal(5 + r) for r in range(4)]
                kw = dict(offsets=torch.from_numpy(offs[self.rank]), mode=mode, padding_idx=3)
                p = None
                if mode == "sum":
                    p = torch.from_numpy(psw[self.rank]).requires_grad_(True)
                    kw["per_sample_weights"] = p
                out = bag(torch.from_numpy(ids[self.rank]), st, **kw)
                dw = np.zeros_like(w)
                for r in range(4):
                    want, dw_r, dpsw = bag_reference(w, ids[r], offs[r], mode, 3,
                                                     psw[r] if mode == "sum" else None)
                    dw += dw_r
                    if r == self.rank:
                        np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-12,
                                                   atol=1e-12)
                        own_dpsw = dpsw
                out.sum().backward()
                got, sl = local_grad_and_slice(st)
                np.testing.assert_allclose(got, dw[sl], rtol=1e-12, atol=1e-12)
                if p is not None:
                    np.testing.assert_allclose(p.grad.numpy(), own_dpsw, rtol=1e-12)
            # 2-D ids, different on each rank
            st, w = sharded_weight(dim, rows, cols, 41 + dim)
            ids2 = rank_ids(self.rank, rows, (3, 4))
            out = bag(torch.from_numpy(ids2), st, mode="mean")
            np.testing.assert_allclose(out.detach().numpy(), w[ids2].mean(1), rtol=1e-12)

    @gloo
    def test_per_rank_invalid_ids_raise_on_every_rank(self):
        st, _ = sharded_weight(0, 10, 6, 2)
        bad = np.array([1, 10]) if self.rank == 2 else np.array([1, 2])
        msg = "Index out of range in Input" if self.rank == 2 else "input of rank 2"
        with self.assertRaisesRegex(ValueError, msg):
            emb(torch.from_numpy(bad), st)
        offs = np.array([1]) if self.rank == 3 else np.array([0])
        with self.assertRaisesRegex(RuntimeError if self.rank == 3 else ValueError,
                                    "offsets\\[0\\] has to be 0" if self.rank == 3
                                    else "input of rank 3"):
            bag(torch.from_numpy(np.array([1, 2])), st, offsets=torch.from_numpy(offs))
        # nothing was left half-way in a collective
        t = torch.ones((1,))
        dist.all_reduce(t)
        self.assertEqual(t.item(), 4.0)
