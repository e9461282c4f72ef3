"""ZeroRedundancyOptimizer (torch.distributed.optim.ZeroRedundancyOptimizer), ZeRO stages 1
and 2, over any shardopt optimizer class.

``zero_stage=1`` (default; torch's semantics): every rank keeps the full parameters and, after
backward, the full averaged gradients (from DistributedDataParallel); the parameters are
partitioned across the group as whole tensors, greedily by size (torch's algorithm), each
rank's local ``optimizer_class`` instance (``self.optim``) holds state and updates only its
own parameters, and after ``step()`` every parameter is broadcast from its owner.

``zero_stage=2`` (beyond torch; used *without* DistributedDataParallel): the optimizer
installs its own post-accumulate-grad hooks.  Parameters are grouped into buckets (reverse
registration order, per param group, ``bucket_cap_mb``); each bucket is a flat buffer padded
to a multiple of the world size W and rank r owns the contiguous range
``[r*S, (r+1)*S)`` of every bucket (S = padded size / W), so the ranks own equal numbers of
elements whatever the tensor sizes.  As soon as a bucket's gradients are ready during
backward it is ``reduce_scatter_tensor``'d asynchronously straight into the owner's
gradient shard (no full all-reduce); a final callback on the autograd engine waits for
them and divides each shard by W (the average: 1/W of the work of dividing before).  ``step()`` runs the fused kernel of ``optimizer_class`` on the owned shards only
(one flat shard tensor per bucket is the inner optimizer's parameter), then
``all_gather_into_tensor`` rebuilds each bucket's parameters on every rank.  The parameters'
``.grad`` is handed to the optimizer in the hook and left ``None``.  A large parameter
(>= 256 KiB) whose size divides by W is a bucket of its own that needs no flat copy: its
``.grad`` is reduce-scattered as it is and its storage is the all-gather's output.

State dicts are torch's global format (``state`` keyed by the parameter's index over all
param groups, each entry shaped like the parameter) in both stages, so a consolidated state
loads into any world size and either stage; ``state_dict()`` exists only on the rank that
``consolidate_state_dict(to)`` gathered to (torch's RuntimeError elsewhere).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from itertools import chain
from typing import Any

from ... import _C
from ...autograd import engine, grad_mode
from ...optim.optimizer import Optimizer, _typename
from .. import distributed_c10d as c10d
from .._broadcast import broadcast_coalesced

__all__ = ["ZeroRedundancyOptimizer"]

_MiB = 1024 * 1024
_TensorBase = _C.TensorBase


def _is_trainable(p) -> bool:
    return p.requires_grad


def _state_nbytes(state: dict) -> int:
    total = 0
    for st in state.values():
        for v in st.values():
            if isinstance(v, _TensorBase):
                total += v.numel() * v.element_size()
    return total


class ZeroRedundancyOptimizer(Optimizer):
    r"""Wraps ``optimizer_class`` and shards its state across ``process_group``.

    Args:
        params: an iterable of Tensors or of param-group dicts (all of one dense type).
        optimizer_class: the local optimizer's class (e.g. ``shardopt.optim.Adam``).
        process_group: the data-parallel group (default: the world).
        parameters_as_bucket_view (bool): stage 1: after ``step()`` parameters travel in one
            flat buffer per rank (one broadcast per rank instead of one per parameter).
            shardopt cannot rebind a parameter's storage, so parameters are copied in and
            out of these buffers rather than being views of them.
        overlap_with_ddp (bool): torch's DDP-comm-hook overlap; not supported (raises) --
            ``zero_stage=2`` overlaps its reduce-scatters with backward itself.
        zero_stage (int, keyword-only): 1 (torch's ZeRO-1, default) or 2 (gradients
            reduce-scattered into flat partitions; use without DDP).
        bucket_cap_mb (float, keyword-only): stage 2 bucket size in MiB (default 25).
        **defaults: the local optimizer's options (lr, betas, ...).
    """

    def __init__(self, params, optimizer_class: type, process_group=None,
                 parameters_as_bucket_view: bool = False, overlap_with_ddp: bool = False,
                 *, zero_stage: int = 1, bucket_cap_mb: float = 25, **defaults: Any) -> None:
        params = self._verify_and_init_params(params)
        self._verify_same_dense_param_type()
        if overlap_with_ddp:
            raise NotImplementedError(
                "ZeroRedundancyOptimizer(overlap_with_ddp=True) needs DDP communication hooks, "
                "which shardopt does not have; use zero_stage=2 (without DDP), which overlaps "
                "the gradient reduce-scatter with backward")
        if zero_stage not in (1, 2):
            raise ValueError(f"zero_stage must be 1 or 2, got {zero_stage!r}")
        if not isinstance(optimizer_class, type) or not issubclass(optimizer_class, Optimizer):
            raise TypeError("optimizer_class must be a subclass of shardopt.optim.Optimizer, "
                            f"got {optimizer_class!r}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.initialized = False
        Optimizer.__init__(self, params, defaults)
        pg = c10d._resolve(process_group)
        if pg is None:
            raise ValueError("ZeroRedundancyOptimizer: this rank is not a member of "
                             "process_group")
        self.process_group = pg
        self.world_size: int = pg.size()
        self.rank: int = pg.rank()
        self.global_rank: int = c10d.get_global_rank(pg, self.rank)
        self.zero_stage = zero_stage
        self.parameters_as_bucket_view = bool(parameters_as_bucket_view)
        self._overlap_with_ddp = False
        self._optim_defaults = defaults
        self._optim_class = optimizer_class
        self._bucket_bytes_cap = int(bucket_cap_mb * _MiB)
        self._partition_parameters_cache: list[list[dict]] = []
        self._param_to_rank_cache: dict = {}
        self._all_state_dicts: list[dict] = []
        self._consolidated: dict | None = None
        self._default_device = self._all_params[0].device
        if zero_stage == 1:
            self.optim = optimizer_class(self._partition_parameters()[self.rank], **defaults)
            self._buckets: list = []
            self._build_param_buckets()
        else:
            self._init_stage2()
        self.initialized = True

    # -- validation (torch's) ---------------------------------------------------------------
    def _verify_and_init_params(self, params) -> list:
        if isinstance(params, _TensorBase):
            raise TypeError("`params` argument should be an iterable of Tensors, but got "
                            f"{_typename(params)}")
        try:
            all_params = list(params)
        except TypeError as e:
            raise TypeError("`params` argument should be an iterable of Tensors or dicts, but "
                            f"got {_typename(params)}") from e
        if len(all_params) == 0:
            raise ValueError("ZeroRedundancyOptimizer got an empty parameter list")
        all_tensors = all(isinstance(p, _TensorBase) for p in all_params)
        all_dicts = all(isinstance(p, dict) for p in all_params)
        if not all_tensors and not all_dicts:
            raise TypeError("`params` argument should be an iterable of Tensors or dicts")
        if all_tensors:
            self._all_params = all_params
        else:
            self._all_params = []
            for group in all_params:
                if "params" not in group:
                    raise ValueError("Each parameter group passed-in via `params` must have a "
                                     "'params' key mapping to the parameters in the group")
                ps = group["params"]
                self._all_params.extend([ps] if isinstance(ps, _TensorBase) else list(ps))
        return all_params

    def _verify_same_dense_param_type(self) -> None:
        typename = _typename(self._all_params[0])
        for p in self._all_params[1:]:
            other = _typename(p)
            if other != typename:
                raise ValueError("ZeroRedundancyOptimizer only supports using the same dense "
                                 f"type for all parameters but got both {typename} and {other}")

    # -- stage 1: whole-parameter partition (torch's) -------------------------------------
    def _partition_parameters(self) -> list[list[dict]]:
        """Per rank, its param groups: greedy by size, largest first, to the least-loaded
        rank; sizes carry over from group to group (torch's algorithm)."""
        if not self._partition_parameters_cache:
            per_rank = [[] for _ in range(self.world_size)]
            sizes = [0] * self.world_size
            for group in self.param_groups:
                chosen = [[] for _ in range(self.world_size)]
                for p in sorted(group["params"], key=lambda t: t.numel(), reverse=True):
                    r = min(range(self.world_size), key=lambda i: sizes[i])
                    chosen[r].append(p)
                    sizes[r] += p.numel()
                for r in range(self.world_size):
                    g = {k: v for k, v in group.items() if k != "params"}
                    g["params"] = chosen[r]
                    per_rank[r].append(g)
            self._partition_parameters_cache = per_rank
        return self._partition_parameters_cache

    @property
    def _param_to_rank(self) -> dict:
        if not self._param_to_rank_cache:
            for r, groups in enumerate(self._partition_parameters()):
                for g in groups:
                    for p in g["params"]:
                        self._param_to_rank_cache[p] = r
        return self._param_to_rank_cache

    @property
    def _index_to_param(self) -> list:
        return list(chain.from_iterable(g["params"] for g in self.param_groups))

    def _clear_cache(self) -> None:
        self._partition_parameters_cache = []
        self._param_to_rank_cache = {}

    def _build_param_buckets(self) -> None:
        """parameters_as_bucket_view: one flat buffer per rank for the broadcast after step."""
        self._buckets = []
        if not self.parameters_as_bucket_view:
            return
        p0 = self._all_params[0]
        for r, groups in enumerate(self._partition_parameters()):
            ps = [p for g in groups for p in g["params"] if p.requires_grad]
            total = sum(p.numel() for p in ps)
            flat = _C.empty((total,), dtype=p0.dtype, device=p0.device) if total else None
            self._buckets.append((ps, flat))

    def _sync_params(self) -> None:
        """Stage 1: every parameter from its owner to everyone."""
        if self.world_size == 1:
            return
        handles = []
        with grad_mode.no_grad():
            if self.parameters_as_bucket_view:
                for r, (ps, flat) in enumerate(self._buckets):
                    if flat is None:
                        continue
                    if r == self.rank:
                        _pack(ps, flat)
                    handles.append(c10d.broadcast(flat, src=c10d.get_global_rank(
                        self.process_group, r), group=self.process_group, async_op=True))
                for h in handles:
                    h.wait()
                for r, (ps, flat) in enumerate(self._buckets):
                    if flat is not None and r != self.rank:
                        _unpack(flat, ps)
                return
            for r, groups in enumerate(self._partition_parameters()):
                src = c10d.get_global_rank(self.process_group, r)
                for g in groups:
                    for p in g["params"]:
                        handles.append(c10d.broadcast(p, src=src, group=self.process_group,
                                                      async_op=True))
            for h in handles:
                h.wait()

    # -- stage 2: flat partitions -------------------------------------------------------------
    def _init_stage2(self) -> None:
        W = self.world_size
        for p in self._all_params:
            for hook in (p.__dict__ or {}).get("_post_accumulate_grad_hooks", {}).values():
                if getattr(hook, "_ddp_hook", False):
                    raise ValueError(
                        "ZeroRedundancyOptimizer(zero_stage=2) reduces gradients itself; do not "
                        "wrap the model in DistributedDataParallel (use zero_stage=1 with DDP)")
        # every rank starts from rank 0's parameters (there is no DDP to do it)
        if W > 1:
            broadcast_coalesced(self._all_params, self.process_group)
        self._buckets2 = []       # dicts: group, params, offsets, shard (S), flat (W*S), ...
        self._param_slot = {}     # param -> (bucket index, offset)
        inner_groups = []
        for gi, group in enumerate(self.param_groups):
            inner_groups.append(self._make_stage2_group(gi, group))
        self.optim = self._optim_class(inner_groups, **self._optim_defaults)
        self._hook_handles = []
        # the hooks live on the parameters and must not keep the optimizer alive: they hold
        # a weak reference, and the optimizer's collection removes them
        self._hook = _weak_hook(self, "_grad_hook")
        weakref.finalize(self, _remove_all, self._hook_handles)
        for p in self._all_params:
            if p.requires_grad:
                self._hook_handles.append(p.register_post_accumulate_grad_hook(self._hook))
        self._in_backward = False
        self._next_launch = 0
        self._has_grads = False     # a backward reduced gradients since the last zero_grad

    def _make_stage2_group(self, gi, group) -> dict:
        W = self.world_size
        ps = [p for p in group["params"] if p.requires_grad]
        runs, cur, cur_bytes = [], [], 0
        for p in reversed(ps):
            nb = p.numel() * p.element_size()
            if _direct(p, W):
                # a large tensor that splits evenly is a bucket of its own, reduced straight
                # from its .grad and gathered straight into its storage: no copies
                if cur:
                    runs.append(cur)
                    cur, cur_bytes = [], 0
                runs.append([p])
                continue
            if cur and cur_bytes + nb > self._bucket_bytes_cap:
                runs.append(cur)
                cur, cur_bytes = [], 0
            cur.append(p)
            cur_bytes += nb
        if cur:
            runs.append(cur)
        shards = []
        for run in runs:
            total = sum(p.numel() for p in run)
            S = max(1, math.ceil(total / W))
            p0 = run[0]
            direct = len(run) == 1 and _direct(p0, W)
            if direct:
                with grad_mode.no_grad():
                    flat = p0.detach().view(-1)   # the parameter's own storage
                grad = None                       # the parameter's .grad, during backward
            else:
                flat = _C.empty((W * S,), dtype=p0.dtype, device=p0.device).zero_()
                grad = _C.empty((W * S,), dtype=p0.dtype, device=p0.device).zero_()
            offsets, off = [], 0
            for p in run:
                self._param_slot[p] = (len(self._buckets2), off)
                offsets.append(off)
                off += p.numel()
            if not direct:
                _pack(run, flat)
            shard = flat[self.rank * S:(self.rank + 1) * S].clone()
            b = {"group": gi, "params": run, "offsets": offsets, "size": S, "numel": total,
                 "direct": direct, "flat": flat, "grad": grad,
                 "shard": shard, "rs_out": _C.empty((S,), dtype=p0.dtype, device=p0.device),
                 "spare": None,
                 "pending": len(run), "ready": set(), "work": None}
            self._buckets2.append(b)
            shards.append(shard)
        g = {k: v for k, v in group.items() if k != "params"}
        g["params"] = shards
        return g

    def _grad_hook(self, p) -> None:
        if not self._in_backward:
            self._in_backward = True
            engine.queue_callback(self._finish_backward)
        bi, off = self._param_slot[p]
        b = self._buckets2[bi]
        if p in b["ready"]:
            raise RuntimeError("ZeroRedundancyOptimizer(zero_stage=2): a parameter's gradient "
                               "arrived twice in one backward pass")
        n = p.numel()
        g = p.grad
        if b["direct"]:
            if not g.is_contiguous() or g.dtype != p.dtype:
                g = g.contiguous().to(p.dtype)
            b["grad"] = g.detach().view(-1)   # kept alive until its reduce-scatter is done
        else:
            with grad_mode.no_grad():
                b["grad"][off:off + n].view(tuple(p.shape)).copy_(g)
        p.grad = None   # handed over: the reduced gradient lives in this rank's shard
        self._ready(b, p)

    def _ready(self, b, p) -> None:
        b["ready"].add(p)
        b["pending"] -= 1
        if b["pending"] == 0:
            self._launch_ready()

    def _launch_ready(self) -> None:
        while self._next_launch < len(self._buckets2):
            b = self._buckets2[self._next_launch]
            if b["pending"] != 0:
                return
            g = b["grad"]
            if self.world_size > 1:
                # summed here, divided by W on the 1/W-sized shard once it arrives
                b["work"] = c10d.reduce_scatter_tensor(b["rs_out"], g, group=self.process_group,
                                                       async_op=True)
            else:
                b["rs_out"].copy_(g)
            self._next_launch += 1

    def _finish_backward(self) -> None:
        self._in_backward = False
        # parameters that got no gradient in this pass count as zero (the ranks must agree
        # on every bucket's reduce-scatter)
        for b in self._buckets2:
            if b["pending"]:
                for p, off in zip(b["params"], b["offsets"]):
                    if p not in b["ready"]:
                        if b["direct"]:
                            b["grad"] = _C.empty((p.numel(),), dtype=p.dtype,
                                                 device=p.device).zero_()
                        else:
                            b["grad"][off:off + p.numel()].zero_()
                        self._ready(b, p)
        with grad_mode.no_grad():
            for b in self._buckets2:
                if b["work"] is not None:
                    b["work"].wait()
                    b["work"] = None
                    b["rs_out"].div_(self.world_size)
                sh = b["shard"]
                if self._has_grads and sh.grad is not None:
                    sh.grad.add_(b["rs_out"])
                else:
                    # hand the reduced shard over and reduce into the previous one next time
                    # (every slot of b["grad"] is rewritten each pass: no zeroing needed)
                    out = b["rs_out"]
                    spare = b["spare"]
                    b["rs_out"] = spare if spare is not None else _C.empty(
                        tuple(out.shape), dtype=out.dtype, device=out.device)
                    b["spare"] = out
                    sh.grad = out
                b["pending"] = len(b["params"])
                b["ready"] = set()
                if b["direct"]:
                    b["grad"] = None
        self._next_launch = 0
        self._has_grads = True

    def _gather_params(self) -> None:
        """Stage 2: rebuild every bucket from the owned shards, then copy into the params."""
        W = self.world_size
        works = []
        for b in self._buckets2:
            if W > 1:
                works.append(c10d.all_gather_into_tensor(b["flat"], b["shard"],
                                                         group=self.process_group,
                                                         async_op=True))
            else:
                with grad_mode.no_grad():
                    b["flat"].copy_(b["shard"])
        with grad_mode.no_grad():
            for i, b in enumerate(self._buckets2):
                if works:
                    works[i].wait()
                if not b["direct"]:   # a direct bucket was gathered into the parameter
                    _unpack(b["flat"], b["params"])

    # -- Optimizer API ------------------------------------------------------------------------
    @staticmethod
    def _sync_param_groups(src, dst) -> None:
        for s, d in zip(src, dst):
            for k, v in s.items():
                if k != "params":
                    d[k] = v

    def step(self, closure: Callable[[], float] | None = None, **kwargs: Any) -> float | None:
        """Update this rank's partition, then bring every rank's parameters up to date."""
        if self.zero_stage == 1:
            self._sync_param_groups(self.param_groups, self.optim.param_groups)
            loss = self.optim.step(closure=closure, **kwargs) if closure is not None \
                else self.optim.step(**kwargs)
            self._sync_param_groups(self.optim.param_groups, self.param_groups)
            self._sync_params()
            return loss
        loss = None
        if closure is not None:
            with grad_mode.enable_grad():
                loss = closure()
        if not self._has_grads:
            return loss
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        self.optim.step(**kwargs)
        self._gather_params()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        if self.zero_stage == 2:
            self.optim.zero_grad(set_to_none)
            self._has_grads = False

    def add_param_group(self, param_group: dict) -> None:
        """Add a group on every rank (all ranks must call it, with the same group)."""
        if getattr(self, "initialized", False) and self.zero_stage == 2:
            before = len(self.param_groups)
            super().add_param_group(param_group)
            new = self.param_groups[before]
            self._all_params.extend(new["params"])
            if self.world_size > 1:
                broadcast_coalesced(list(new["params"]), self.process_group)
            self.optim.add_param_group(self._make_stage2_group(before, new))
            for p in new["params"]:
                if p.requires_grad:
                    self._hook_handles.append(p.register_post_accumulate_grad_hook(self._hook))
            return
        super().add_param_group(param_group)
        if getattr(self, "initialized", False):
            self._all_params.extend(self.param_groups[-1]["params"])
            self._clear_cache()
            groups = self._partition_parameters()[self.rank]
            if len(groups) == len(self.optim.param_groups) + 1:
                self.optim.add_param_group(groups[-1])
            if self.parameters_as_bucket_view:
                self._build_param_buckets()

    # -- state ---------------------------------------------------------------------------------
    def state_bytes(self) -> int:
        """Bytes of optimizer state tensors (moments, steps, ...) this rank holds."""
        return _state_nbytes(self.optim.state)

    def _local_global_state(self) -> dict:
        """This rank's state as {global index: {key: value}}; stage 2 entries are pieces:
        {key: (bucket, tensor over this rank's shard)}."""
        index = {p: i for i, p in enumerate(self._index_to_param)}
        if self.zero_stage == 1:
            return {index[p]: dict(st) for p, st in self.optim.state.items()}
        out = {}
        for bi, b in enumerate(self._buckets2):
            st = self.optim.state.get(b["shard"])
            if st:
                out[("bucket", bi)] = dict(st)
        return out

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather every rank's state on group rank ``to`` (call on all ranks)."""
        if not 0 <= to < self.world_size:
            raise ValueError(f"to must be a rank of the group (0..{self.world_size - 1}), "
                             f"got {to}")
        local = _to_cpu(self._local_global_state())
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        gathered = [None] * self.world_size if self.rank == to else None
        if self.world_size > 1:
            c10d.gather_object(local, gathered, dst=c10d.get_global_rank(self.process_group, to),
                               group=self.process_group)
        else:
            gathered = [local]
        self._all_state_dicts = []
        self._consolidated = None
        if self.rank != to:
            return
        self._all_state_dicts = gathered
        state: dict = {}
        index = {p: i for i, p in enumerate(self._index_to_param)}
        if self.zero_stage == 1:
            for d in gathered:
                state.update(d)
        else:
            for bi, b in enumerate(self._buckets2):
                pieces = [d.get(("bucket", bi)) for d in gathered]
                if not any(pieces):
                    continue
                first = next(x for x in pieces if x)
                per_key = {}
                for key, v in first.items():
                    if isinstance(v, _TensorBase) and tuple(v.shape) == (b["size"],):
                        S = b["size"]
                        flat = _C.empty((len(pieces) * S,), dtype=v.dtype, device="cpu")
                        for r, x in enumerate(pieces):
                            flat[r * S:(r + 1) * S].copy_(x[key])
                        per_key[key] = flat
                    else:
                        per_key[key] = v
                for p, off in zip(b["params"], b["offsets"]):
                    st = {}
                    for key, v in per_key.items():
                        if key in first and isinstance(first[key], _TensorBase) and \
                                tuple(first[key].shape) == (b["size"],):
                            st[key] = v[off:off + p.numel()].view(tuple(p.shape)).clone()
                        else:
                            st[key] = v.clone() if isinstance(v, _TensorBase) else v
                    state[index[p]] = st
        self._consolidated = state

    def state_dict(self) -> dict[str, Any]:
        """The global state (torch's format) on the rank ``consolidate_state_dict`` gathered
        to; RuntimeError elsewhere (as torch)."""
        if self._consolidated is None:
            raise RuntimeError(
                "Optimizer state has not been consolidated on this rank. Please call "
                f"`consolidate_state_dict(to={self.rank})` on all ranks beforehand if you meant "
                "to save the global state.")
        sd = super().state_dict()   # param_groups with global indices (self.state is empty)
        sd["state"] = dict(sorted(self._consolidated.items()))
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a global state dict (from ``state_dict()``, any world size or stage, or a plain
        single-process optimizer's state_dict over the same parameters); each rank keeps
        only its partition's state."""
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        if groups is None or "state" not in state_dict:
            raise ValueError("state_dict must have 'state' and 'param_groups' entries")
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, sg in zip(self.param_groups, groups):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
        params = self._index_to_param
        # saved ids -> our params, in order (as torch's Optimizer.load_state_dict maps them)
        id_map = {sid: p for sid, p in zip(chain.from_iterable(g["params"] for g in groups),
                                           params)}
        saved = {id_map[k]: v for k, v in state_dict["state"].items() if k in id_map}
        for g, sg in zip(self.param_groups, groups):
            for k, v in sg.items():
                if k != "params":
                    g[k] = v
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        self.optim.state.clear()
        if self.zero_stage == 1:
            for p, st in saved.items():
                if self._param_to_rank[p] == self.rank:
                    self.optim.state[p] = {k: _to_like(v, p) for k, v in st.items()}
            return
        for b in self._buckets2:
            sts = [saved.get(p) for p in b["params"]]
            if not any(sts):
                continue
            S, lo = b["size"], self.rank * b["size"]
            ref = next(x for x in sts if x)
            shard_state = {}
            for key, v in ref.items():
                if isinstance(v, _TensorBase) and v.dim() > 0:
                    flat = _C.empty((self.world_size * S,), dtype=b["shard"].dtype,
                                    device=b["shard"].device).zero_()
                    for p, off, st in zip(b["params"], b["offsets"], sts):
                        if st is not None and key in st:
                            flat[off:off + p.numel()].view(tuple(p.shape)).copy_(
                                _to_like(st[key], p))
                    shard_state[key] = flat[lo:lo + S].clone()
                else:
                    shard_state[key] = v.clone() if isinstance(v, _TensorBase) else v
            self.optim.state[b["shard"]] = shard_state


_DIRECT_MIN_BYTES = 256 * 1024


def _direct(p, world: int) -> bool:
    """Whether ZeRO-2 gives p a bucket of its own that works on p's own storage."""
    return (p.numel() % world == 0 and p.numel() * p.element_size() >= _DIRECT_MIN_BYTES
            and p.is_contiguous())


def _weak_hook(obj, method: str):
    """A hook calling ``obj.<method>(arg)`` while obj is alive (a no-op afterwards)."""
    ref = weakref.ref(obj)

    def hook(arg):
        o = ref()
        if o is not None:
            getattr(o, method)(arg)
    return hook


def _remove_all(handles) -> None:
    for h in handles:
        h.remove()


def _pack(params, flat) -> None:
    off = 0
    with grad_mode.no_grad():
        for p in params:
            n = p.numel()
            flat[off:off + n].view(tuple(p.shape)).copy_(p)
            off += n


def _unpack(flat, params) -> None:
    off = 0
    with grad_mode.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[off:off + n].view(tuple(p.shape)))
            off += n


def _to_cpu(obj):
    if isinstance(obj, _TensorBase):
        return obj.cpu().clone() if obj.device.type != "cpu" else obj.clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def _to_like(v, p):
    """A saved state value on p's device (0-d step counters stay on the CPU, as Adam keeps
    them)."""
    if not isinstance(v, _TensorBase):
        return v
    if v.dim() == 0:
        return v.cpu().clone()
    return v.to(p.device).clone() if v.device != p.device else v.clone()
