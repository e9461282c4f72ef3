"""DistributedDataParallel (torch.nn.parallel.DistributedDataParallel) over shardopt's process
groups.

Each rank holds a full replica of the module.  Construction broadcasts parameters and buffers
from rank 0.  Gradients are averaged across the group in buckets: parameters in reverse
registration order (the order backward usually produces their gradients), grouped by dtype and
device, cut at ``bucket_cap_mb`` (the first bucket at 1 MiB, as torch does, so communication
starts early).  A post-accumulate-grad hook on every parameter copies its gradient into its
bucket's flat buffer; when a bucket is complete, and every bucket before it has been launched
(all ranks must issue collectives in one order), its ``all_reduce`` is issued with
``async_op=True`` and runs on the group's worker while the rest of backward goes on.  A final
callback queued on the autograd engine waits for the buckets and copies the averages back
into ``.grad`` (with ``gradient_as_bucket_view=True`` the grads *are* views of the buckets and
nothing is copied).

Parameters that are not plain tensors (ShardedTensors) are skipped: their local shards hold
different data on each rank of a model-parallel group, so averaging them there would be
wrong.  To data-parallelize a sharded model, give DDP a data-parallel ``process_group`` (see
the README, "DDP and sharding").
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any

from ... import _C
from ...autograd import engine, grad_mode
from ...autograd.graph import AccumulateGrad
from ..modules.module import Module

__all__ = ["DistributedDataParallel"]

_TensorBase = _C.TensorBase
_MiB = 1024 * 1024
_FIRST_BUCKET_BYTES = 1 * _MiB  # torch's dist._DEFAULT_FIRST_BUCKET_BYTES


def _dist():
    from ... import distributed  # noqa: PLC0415  (distributed sits beside nn, imported late)
    return distributed


def _tensors_in(obj, out):
    """Every tensor in a (nested) forward output: tuples, lists, dicts, dataclass-like."""
    if isinstance(obj, _TensorBase):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _tensors_in(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _tensors_in(o, out)
    return out


def _reachable_leaves(outputs) -> set[int]:
    """ids of the leaves whose AccumulateGrad nodes the outputs' graphs reach."""
    found, seen, stack = set(), set(), []
    for t in outputs:
        gf = t.grad_fn
        if gf is not None and id(gf) not in seen:
            seen.add(id(gf))
            stack.append(gf)
        elif gf is None and t.requires_grad:
            found.add(id(t))
    while stack:
        node = stack.pop()
        if type(node) is AccumulateGrad:
            found.add(id(node.variable))
            continue
        for child, _ in node.next_functions:
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return found


def _sync_tensors(tensors, pg, src=0):
    from ...distributed._broadcast import broadcast_coalesced  # noqa: PLC0415
    broadcast_coalesced(tensors, pg, src)


def _remove_hooks(handles) -> None:
    for h in handles:
        h.remove()


class DistributedDataParallel(Module):
    r"""Data parallelism at the module level (torch.nn.parallel.DistributedDataParallel).

    Args:
        module (Module): the module to replicate; its parameters and buffers are broadcast
            from rank 0 of ``process_group`` here.
        device_ids (list, optional): ``None`` for CPU modules (and multi-device modules); for
            a single-device CUDA module, that one device (or ``None``).
        output_device: accepted for torch's signature (outputs stay where the module puts
            them, as torch does for single-device modules).
        dim (int): accepted for torch's signature (the batch is split by the user, one
            shard per rank, as in torch's one-device-per-process mode).
        broadcast_buffers (bool): broadcast the module's buffers from rank 0 at the start of
            every forward. Default: ``True``.
        process_group: the group whose ranks average gradients (default: the world).
        bucket_cap_mb (float): bucket size in MiB (default 25; the first bucket is 1 MiB).
        find_unused_parameters (bool): after each forward, find the parameters the output's
            graph does not reach and treat them as ready, so their buckets still reduce;
            parameters unused on every rank keep their ``.grad`` (``None`` if it was).
        gradient_as_bucket_view (bool): make each ``.grad`` a view into its bucket (no
            copy back after the reduction; saves one gradient's worth of memory).
        static_graph (bool): the set of used parameters is the same every iteration: it is
            found once, in the first iteration, and reused.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0,
                 broadcast_buffers=True, process_group=None, bucket_cap_mb=None,
                 find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False, **kwargs) -> None:
        super().__init__()
        if kwargs:
            raise TypeError("DistributedDataParallel.__init__() got an unexpected keyword "
                            f"argument '{next(iter(kwargs))}'")
        if not isinstance(module, Module):
            raise TypeError(f"module must be a shardopt.nn.Module, got {type(module).__name__}")
        dist = _dist()
        pg = dist.distributed_c10d._resolve(process_group)
        if pg is None:
            raise ValueError("DistributedDataParallel: this rank is not a member of "
                             "process_group")
        params = [p for p in module.parameters()
                  if isinstance(p, _TensorBase) and p.requires_grad]
        if not params:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't "
                               "have any parameter that requires a gradient.")
        devices = {str(p.device) for p in params}
        if device_ids is not None or output_device is not None:
            if len(devices) > 1 or next(iter(devices)) == "cpu" or \
                    (device_ids is not None and len(device_ids) != 1):
                raise ValueError(
                    "DistributedDataParallel device_ids and output_device arguments only work "
                    "with single-device/multiple-device GPU modules or CPU modules, but got "
                    f"device_ids {device_ids}, output_device {output_device}, and module "
                    f"parameters {devices}.")
        if bucket_cap_mb is None:
            bucket_cap_mb = 25
            first_cap = _FIRST_BUCKET_BYTES
        else:
            if not bucket_cap_mb > 0:
                raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb}")
            first_cap = int(bucket_cap_mb * _MiB)
        self.module = module
        self.device_ids = device_ids
        self.output_device = output_device
        self.dim = dim
        self.broadcast_buffers = bool(broadcast_buffers)
        self.process_group = pg
        self.bucket_bytes_cap = int(bucket_cap_mb * _MiB)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.gradient_as_bucket_view = bool(gradient_as_bucket_view)
        self.static_graph = bool(static_graph)
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        self._world = pg.size()
        self._params = params
        self._param_names = {}
        for name, p in module.named_parameters():
            self._param_names.setdefault(id(p), name)
        self._buffers_to_sync = [b for b in module.buffers() if isinstance(b, _TensorBase)]

        # construction: every rank starts from rank 0's parameters and buffers
        if self._world > 1:
            _sync_tensors(params + self._buffers_to_sync, pg)

        self._build_buckets(first_cap)
        self._hooks = [p.register_post_accumulate_grad_hook(self._make_hook(i))
                       for i, p in enumerate(params)]
        weakref.finalize(self, _remove_hooks, list(self._hooks))
        # per-iteration state
        self._prepared = False        # a forward with sync on set up this iteration
        self._sync_iter = False
        self._in_backward = False
        self._ready = [False] * len(params)
        self._locally_used = [False] * len(params)
        self._unused: list[int] = []
        self._static_unused: list[int] | None = None
        self._next_launch = 0
        self._unfinished: list[int] | None = None

    # -- buckets -------------------------------------------------------------------------
    def _build_buckets(self, first_cap) -> None:
        """Reverse parameter order, split by dtype/device and by the byte caps."""
        buckets = []   # lists of param indices
        cur, cur_bytes, cur_key = [], 0, None
        cap = first_cap
        for i in reversed(range(len(self._params))):
            p = self._params[i]
            key = (p.dtype, str(p.device))
            nbytes = p.numel() * p.element_size()
            if cur and (key != cur_key or cur_bytes + nbytes > cap):
                buckets.append(cur)
                cur, cur_bytes = [], 0
                cap = self.bucket_bytes_cap
            cur.append(i)
            cur_bytes += nbytes
            cur_key = key
        if cur:
            buckets.append(cur)
        self._buckets = []
        self._param_bucket = [None] * len(self._params)
        self._param_view = [None] * len(self._params)
        for b, idxs in enumerate(buckets):
            p0 = self._params[idxs[0]]
            total = sum(self._params[i].numel() for i in idxs)
            flat = _C.empty((total,), dtype=p0.dtype, device=p0.device).zero_()
            off = 0
            for i in idxs:
                p = self._params[i]
                n = p.numel()
                self._param_view[i] = flat[off:off + n].view(tuple(p.shape))
                self._param_bucket[i] = b
                off += n
            self._buckets.append({"params": idxs, "flat": flat, "pending": len(idxs),
                                  "work": None})

    def _reset_iteration(self) -> None:
        self._ready = [False] * len(self._params)
        self._locally_used = [False] * len(self._params)
        for bk in self._buckets:
            bk["pending"] = len(bk["params"])
            bk["work"] = None
        self._next_launch = 0
        self._in_backward = False

    # -- forward ---------------------------------------------------------------------------
    def forward(self, *inputs, **kwargs) -> Any:
        sync = grad_mode.is_grad_enabled() and self.require_backward_grad_sync
        if self._unfinished is not None and sync:
            missing = self._unfinished
            self._unfinished = None
            names = ", ".join(self._param_names.get(id(self._params[i]), "?") for i in missing)
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a "
                "new one. This error indicates that your module has parameters that were not "
                "used in producing loss. You can enable unused parameter detection by passing "
                "the keyword argument `find_unused_parameters=True` to "
                "`shardopt.nn.parallel.DistributedDataParallel`, and by \nmaking sure all "
                "`forward` function outputs participate in calculating loss. \nIf you already "
                "have done the above, then the distributed data parallel module wasn't able to "
                "locate the output tensors in the return value of your module's `forward` "
                "function. Please include the loss function and the structure of the return "
                "value of `forward` of your module when reporting this issue (e.g. list, dict, "
                "iterable).\nParameter indices which did not receive grad for rank "
                f"{self.process_group.rank()}: {' '.join(str(i) for i in missing)}\n"
                f"Parameters which did not receive grad for rank "
                f"{self.process_group.rank()}: {names}")
        if self.broadcast_buffers and self._buffers_to_sync and self._world > 1 and \
                self.require_forward_param_sync:
            _sync_tensors(self._buffers_to_sync, self.process_group)
        output = self.module(*inputs, **kwargs)
        self._sync_iter = sync
        if sync:
            self._reset_iteration()
            self._prepared = True
            if self.find_unused_parameters or self.static_graph:
                if self.static_graph and self._static_unused is not None:
                    self._unused = self._static_unused
                else:
                    used = _reachable_leaves(_tensors_in(output, []))
                    self._unused = [i for i, p in enumerate(self._params) if id(p) not in used]
                    if self.static_graph:
                        self._static_unused = self._unused
            else:
                self._unused = []
        else:
            self._prepared = False
        return output

    @contextmanager
    def no_sync(self):
        """Gradients of the backward passes run inside accumulate locally, unreduced; the
        first backward after leaving reduces the accumulated sum."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    # -- backward --------------------------------------------------------------------------
    def _make_hook(self, index):
        # weak: the hook lives on the parameter and must not keep this wrapper alive
        ref = weakref.ref(self)

        def hook(param):
            ddp = ref()
            if ddp is not None:
                ddp._on_grad_ready(index)
        hook._ddp_hook = True   # ZeroRedundancyOptimizer(zero_stage=2) refuses DDP'd params
        return hook

    def _on_grad_ready(self, index) -> None:
        if not self._prepared:
            return
        if not self._in_backward:
            self._in_backward = True
            engine.queue_callback(self._finalize_backward)
            for i in self._unused:   # torch marks unused params ready in the first hook
                self._mark_ready(i, used=False)
        if self._ready[index]:
            name = self._param_names.get(id(self._params[index]), "?")
            raise RuntimeError(
                "Expected to mark a variable ready only once. This error is caused by one of "
                "the following reasons: 1) Use of a module parameter outside the `forward` "
                "function. 2) Reused parameters in multiple reentrant backward passes, or "
                "backward called more than once per forward. "
                f"Parameter at index {index} with name {name} has been marked as ready twice.")
        self._mark_ready(index, used=True)

    def _mark_ready(self, index, used) -> None:
        self._ready[index] = True
        self._locally_used[index] = used
        p = self._params[index]
        view = self._param_view[index]
        g = p.grad
        with grad_mode.no_grad():
            if g is None:
                view.zero_()
            elif self.gradient_as_bucket_view:
                if not (g.data_ptr() == view.data_ptr() and tuple(g.shape) == tuple(view.shape)):
                    view.copy_(g)
                    p.grad = view
            else:
                view.copy_(g)
        b = self._param_bucket[index]
        bk = self._buckets[b]
        bk["pending"] -= 1
        if bk["pending"] == 0:
            self._launch_ready()

    def _launch_ready(self) -> None:
        """Launch complete buckets in bucket order (every rank issues the same sequence)."""
        dist = _dist()
        while self._next_launch < len(self._buckets):
            bk = self._buckets[self._next_launch]
            if bk["pending"] != 0:
                return
            flat = bk["flat"]
            if self._world > 1:
                flat.div_(self._world)
                bk["work"] = dist.all_reduce(flat, group=self.process_group, async_op=True)
            self._next_launch += 1

    def _finalize_backward(self) -> None:
        self._in_backward = False
        self._prepared = False
        if self.find_unused_parameters or self.static_graph:
            # a param the graph reached whose gradient never arrived: locally unused
            for i in range(len(self._params)):
                if not self._ready[i]:
                    self._mark_ready(i, used=False)
        works = [bk["work"] for bk in self._buckets if bk["work"] is not None]
        used_map = None
        if self.find_unused_parameters or self.static_graph:
            used_map = _C.empty((len(self._params),), dtype=_C.int32, device="cpu")
            for i, u in enumerate(self._locally_used):
                used_map[i] = 1 if u else 0
            if self._world > 1:
                works.append(_dist().all_reduce(used_map, group=self.process_group,
                                                async_op=True))
        for w in works:
            w.wait()
        if self._next_launch < len(self._buckets):
            # some bucket never completed: torch reports it at the next forward
            self._unfinished = [i for i in range(len(self._params)) if not self._ready[i]]
            return
        globally_used = None
        if used_map is not None:
            globally_used = [int(v) != 0 for v in used_map.tolist()]
        with grad_mode.no_grad():
            for i, p in enumerate(self._params):
                if globally_used is not None and not globally_used[i]:
                    continue   # unused on every rank: .grad stays as it was
                view = self._param_view[i]
                g = p.grad
                if self.gradient_as_bucket_view:
                    if g is None or g.data_ptr() != view.data_ptr():
                        p.grad = view
                elif g is None:
                    p.grad = view.clone()
                else:
                    g.copy_(view)

    # -- Module surface ----------------------------------------------------------------------
    def train(self, mode=True) -> "DistributedDataParallel":
        super().train(mode)
        return self

    def extra_repr(self) -> str:
        return ""
