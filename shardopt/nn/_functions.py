"""Differentiable wrappers (``autograd.Function``) over the C nn kernels: layer/RMS norm,
fused cross-entropy and NLL, embedding and embedding_bag, dropout, constant padding.

Each forward calls one kernel and saves what its backward kernel needs; argument checking
with torch's messages happens in ``nn.functional`` before these are applied.  Node names
follow torch's where they can (``NativeLayerNormBackward``, ``EmbeddingBackward``...).
"""
from .. import _C
from ..autograd.function import Function

_XE_NLL, _XE_INDEX, _XE_PROB = 0, 1, 2


class NativeLayerNorm(Function):
    """LayerNorm (rms=False) or RMSNorm (rms=True) over the last ``len(normalized_shape)``
    dims; weight / bias may be None."""

    @staticmethod
    def forward(ctx, input, weight, bias, normalized_shape, eps, rms):
        out, mean, rstd = _C._layer_norm(input, normalized_shape, weight, bias, eps, rms)
        n = 1
        for s in normalized_shape:
            n *= s
        ctx.n, ctx.rms, ctx.shape = n, rms, tuple(normalized_shape)
        ctx.save_for_backward(input, weight, mean, rstd)
        return out

    @staticmethod
    def backward(ctx, grad):
        input, weight, mean, rstd = ctx.saved_tensors
        need = ctx.needs_input_grad
        gx, gw, gb = _C._layer_norm_backward(grad, input, mean, rstd, weight, ctx.n, ctx.rms,
                                             (need[0], need[1] and weight is not None,
                                              need[2]))
        if gw is not None:
            gw = gw.reshape(ctx.shape)
        if gb is not None:
            gb = gb.reshape(ctx.shape)
        return gx, gw, gb, None, None, None


class CrossEntropyLoss(Function):
    """Per-sample losses of the fused kernel (kind: 0 nll, 1 class indices, 2 probabilities)
    reduced as torch does: 'mean' = sum(loss) / sum(wt), 'sum', or 'none' (target's shape)."""

    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, label_smoothing, kind, reduction,
                out_shape):
        loss, wt, lse = _C._cross_entropy(input, target, weight, ignore_index, label_smoothing,
                                          kind)
        ctx.args = (ignore_index, label_smoothing, kind, reduction)
        if reduction == "none":
            out = loss.reshape(out_shape)
            denom = None
        elif reduction == "sum":
            out = loss.sum()
            denom = None
        else:
            denom = wt.sum()
            out = loss.sum() / denom
        ctx.save_for_backward(input, target, weight, lse, denom)
        return out

    @staticmethod
    def backward(ctx, grad):
        input, target, weight, lse, denom = ctx.saved_tensors
        ignore_index, label_smoothing, kind, reduction = ctx.args
        if reduction == "mean":
            grad = grad / denom
        gx = _C._cross_entropy_backward(input, target, weight, lse, grad.contiguous(),
                                        ignore_index, label_smoothing, kind)
        return gx, None, None, None, None, None, None, None


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, indices, padding_idx, scale_grad_by_freq):
        ctx.args = (padding_idx, scale_grad_by_freq)
        ctx.save_for_backward(weight, indices)
        return _C._embedding(weight, indices)

    @staticmethod
    def backward(ctx, grad):
        weight, indices = ctx.saved_tensors
        padding_idx, freq = ctx.args
        gw = _C._embedding_backward(grad, weight, indices, padding_idx, freq)
        return gw, None, None, None


class EmbeddingBag(Function):
    """Bags of rows of ``weight`` (indices 1-D, offsets B + 1 boundaries) reduced by
    mode 0 sum / 1 mean / 2 max, optionally weighted per sample (sum only)."""

    @staticmethod
    def forward(ctx, weight, indices, offsets, mode, per_sample_weights, padding_idx,
                scale_grad_by_freq=False):
        out, count, max_idx = _C._embedding_bag(weight, indices, offsets, mode,
                                                per_sample_weights, padding_idx)
        ctx.args = (mode, padding_idx, scale_grad_by_freq)
        ctx.save_for_backward(weight, indices, offsets, count, max_idx, per_sample_weights)
        return out

    @staticmethod
    def backward(ctx, grad):
        weight, indices, offsets, count, max_idx, psw = ctx.saved_tensors
        mode, padding_idx, freq = ctx.args
        need = ctx.needs_input_grad
        gw, gp = _C._embedding_bag_backward(grad, weight, indices, offsets, count, max_idx, mode,
                                            psw, padding_idx, need[0],
                                            len(need) > 4 and need[4], freq)
        if gp is not None:
            gp = gp.reshape(psw.shape)
        return gw, None, None, None, gp, None, None


class Dropout(Function):
    @staticmethod
    def forward(ctx, input, p, generator):
        out, mask = _C._dropout(input, p, generator)
        ctx.scale = 1.0 / (1.0 - p)
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    def backward(ctx, grad):
        mask, = ctx.saved_tensors
        return grad * mask * ctx.scale, None, None


class ConstantPadNd(Function):
    """Pad (or, for negative amounts, crop) the last dims with a constant."""

    @staticmethod
    def forward(ctx, input, pad, value):
        shape = list(input.shape)
        nd = len(pad) // 2
        src = input
        dst_slices = []
        for i in range(nd):
            d = input.ndim - 1 - i
            lo, hi = pad[2 * i], pad[2 * i + 1]
            new = shape[d] + lo + hi
            if new < 0:
                raise RuntimeError(f"The input size {shape[d]}, plus negative padding {lo} and "
                                   f"{hi} resulted in a negative output size, which is invalid. "
                                   f"Check dimension {d} of your input.")
            # the part of the input that survives negative padding
            s0, s1 = max(-lo, 0), shape[d] - max(-hi, 0)
            src = src.narrow(d, s0, max(s1 - s0, 0))
            dst_slices.append((d, max(lo, 0), max(s1 - s0, 0)))
            shape[d] = new
        out = _C.empty(tuple(shape), input.dtype, input.device)
        out.fill_(value)
        view = out
        for d, start, length in dst_slices:
            view = view.narrow(d, start, length)
        if src.numel() > 0:
            view.copy_(src)
        ctx.regions = (input.shape, dst_slices, [(d, max(-pad[2 * (input.ndim - 1 - d)], 0))
                                                 for d, _, _ in dst_slices])
        return out

    @staticmethod
    def backward(ctx, grad):
        in_shape, dst_slices, src_starts = ctx.regions
        g = grad
        for d, start, length in dst_slices:
            g = g.narrow(d, start, length)
        if tuple(g.shape) == tuple(in_shape):
            return g.contiguous(), None, None
        gx = _C.empty(tuple(in_shape), grad.dtype, grad.device).zero_()
        view = gx
        for (d, s0), (_, _, length) in zip(src_starts, dst_slices):
            view = view.narrow(d, s0, length)
        view.copy_(g)
        return gx, None, None


class Normalize(Function):
    """y = x / max(||x||_p along dim, eps)."""

    @staticmethod
    def forward(ctx, input, p, dim, eps):
        norm = input.norm(p, dim, keepdim=True)
        denom = _clamp_min(norm, eps)
        ctx.args = (p, dim, eps)
        ctx.save_for_backward(input, norm, denom)
        return input / denom

    @staticmethod
    def backward(ctx, grad):
        from .. import where
        x, norm, denom = ctx.saved_tensors
        p, dim, eps = ctx.args
        gx = grad / denom
        # where the norm was not clamped, the denominator depends on x too:
        # d||x||_p / dx = sign(x) |x|^(p-1) / ||x||^(p-1)
        dot = (grad * x).sum(dim, keepdim=True)
        if p == 2.0:
            dn = x / norm
        elif p == 1.0:
            dn = x.sign()
        else:
            dn = x.sign() * (x.abs() / norm) ** (p - 1.0)
        corr = (dot / (denom * denom)) * dn
        active = (norm > eps).to(x.dtype)
        corr = where(active.expand(tuple(x.shape)) > 0, corr, 0.0)
        return gx - corr, None, None, None


def _clamp_min(t, lo):
    from .. import where
    return where(t > lo, t, float(lo))


class BinaryCrossEntropyWithLogits(Function):
    """(1 - t) x + lw * softplus(-x), lw = 1 + (pos_weight - 1) t, times weight; per element
    (the caller reduces).  softplus(-x) = max(-x, 0) + log(1 + exp(-|x|)) never overflows."""

    @staticmethod
    def forward(ctx, input, target, weight, pos_weight):
        sp = (-input).relu() + ((-input.abs()).exp() + 1.0).log()
        lw = None
        if pos_weight is not None:
            lw = (pos_weight - 1.0) * target + 1.0
            loss = (1.0 - target) * input + lw * sp
        else:
            loss = (1.0 - target) * input + sp
        raw = loss
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(input, target, weight, pos_weight, sp, raw)
        return loss

    @staticmethod
    def backward(ctx, grad):
        from ..autograd._common import sum_to
        x, t, w, pw, sp, raw = ctx.saved_tensors
        need = ctx.needs_input_grad
        gw_ = grad * w if w is not None else grad
        sig_neg = (-x).sigmoid()
        lw = (pw - 1.0) * t + 1.0 if pw is not None else None
        gx = gt = gw = gpw = None
        if need[0]:
            gx = gw_ * ((1.0 - t) - (lw * sig_neg if lw is not None else sig_neg))
            gx = sum_to(gx, tuple(x.shape))
        if need[1]:
            gt = gw_ * (-x + ((pw - 1.0) * sp if pw is not None else 0.0))
            gt = sum_to(gt, tuple(t.shape))
        if len(need) > 2 and need[2]:
            gw = sum_to(grad * raw, tuple(w.shape))
        if len(need) > 3 and need[3]:
            gpw = sum_to(gw_ * t * sp, tuple(pw.shape))
        return gx, gt, gw, gpw
