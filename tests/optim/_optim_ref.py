"""Reference implementations for the optimizer tests.

* ``ref_sgd`` / ``ref_adam``: torch.optim's formulas (spec section 9) in float64 NumPy.
* ``emu_*``: the same formulas evaluated in the kernels' exact operation order in a given
  NumPy dtype (float32 / float64), rounding the stored values to the param dtype after each
  step (``store``).  NumPy's float32 arithmetic is IEEE without fma contraction, like the C
  kernels, so for float32 params the emulation matches the C result bit for bit.
"""
import numpy as np

import shardopt
from shardopt import _C


# ---------------------------------------------------------------- tensors <-> numpy

def bf16_round(x):
    """float32 -> nearest bfloat16 value (round to nearest even), returned as float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    out = u.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, out)


def to_tensor(arr, dtype=None, device="cpu"):
    """A fresh shardopt tensor holding arr (float32/float64/float16 directly, bfloat16 by
    conversion from float32)."""
    arr = np.array(arr, copy=True)
    if dtype is shardopt.bfloat16:
        t = _C.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(shardopt.bfloat16)
    else:
        t = _C.from_numpy(np.ascontiguousarray(arr))
        if dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
    if device != "cpu":
        t = t.to(device)
    return t


def to_numpy(t):
    t = t.cpu()
    if t.dtype == shardopt.bfloat16:
        t = t.to(shardopt.float32)
    return np.array(t.numpy(), copy=True)


NP_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16,
             "bfloat16": np.float32}


def dtype_by_name(name):
    return getattr(shardopt, name)


def store_fn(name):
    """Rounding applied to values stored in a tensor of dtype `name`."""
    if name == "float16":
        return lambda x: x.astype(np.float16).astype(np.float32)
    if name == "bfloat16":
        return bf16_round
    return lambda x: x


# ---------------------------------------------------------------- float64 references

def ref_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
            maximize=False):
    p = np.array(p, dtype=np.float64)
    buf = None
    for g in grads:
        g = np.array(g, dtype=np.float64)
        if maximize:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p, buf


def ref_adam(p, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
             amsgrad=False, maximize=False, decoupled=False):
    p = np.array(p, dtype=np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        g = np.array(g, dtype=np.float64)
        if maximize:
            g = -g
        if weight_decay != 0:
            if decoupled:
                p = p * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        bc1 = 1 - beta1 ** t
        bc2 = 1 - beta2 ** t
        if amsgrad:
            vmax = np.maximum(vmax, v)  # max over the raw v
            denom = np.sqrt(vmax) / np.sqrt(bc2) + eps
        else:
            denom = np.sqrt(v) / np.sqrt(bc2) + eps
        p = p - (lr / bc1) * m / denom
    return p, m, v, vmax


# ---------------------------------------------------------------- kernel-order emulation

def emu_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
            maximize=False, math=np.float32, store=lambda x: x):
    M = math
    p = store(np.array(p, dtype=M))
    lr_, wd_, mu_, omd_ = M(lr), M(weight_decay), M(momentum), M(1.0 - dampening)
    buf = None
    for g in grads:
        g = store(np.array(g, dtype=M))
        if maximize:
            g = -g
        if weight_decay != 0:
            g = g + wd_ * p
        if momentum != 0:
            b = g if buf is None else buf * mu_ + omd_ * g
            buf = store(b)  # stored rounded; the update below uses the unrounded value
            g = g + mu_ * b if nesterov else b
        p = store(p - lr_ * g)
    return p, buf


def emu_adam(p, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
             amsgrad=False, maximize=False, decoupled=False, math=np.float32,
             store=lambda x: x):
    M = math
    p = store(np.array(p, dtype=M))
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    w = M(1.0 - beta1)
    b2, omb2, eps_, wd_, decay = M(beta2), M(1.0 - beta2), M(eps), M(weight_decay), \
        M(1.0 - lr * weight_decay)
    for t, g in enumerate(grads, 1):
        step = float(np.float32(t))  # the float32 step counter
        step_size = M(lr / (1.0 - beta1 ** step))
        bc2_sqrt = M((1.0 - beta2 ** step) ** 0.5)
        g = store(np.array(g, dtype=M))
        if maximize:
            g = -g
        if weight_decay != 0:
            if decoupled:
                p = p * decay
            else:
                g = g + wd_ * p
        if w < 0.5:
            m = m + w * (g - m)
        else:
            m = g - (g - m) * (M(1) - w)
        v = v * b2 + omb2 * g * g
        vv = v
        if amsgrad:
            vv = np.where(np.isnan(vmax), vmax, np.where(vmax > v, vmax, v))
            vmax = store(vv)
        denom = np.sqrt(vv) / bc2_sqrt + eps_
        p = store(p - (step_size * m) / denom)
        m, v = store(m), store(v)  # stored rounded; the update above used unrounded values
    return p, m, v, vmax
