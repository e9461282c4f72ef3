"""The meta device: tensors with dtype, shape, strides and requires_grad but no data.

Facts checked (torch's behaviour): creation on "meta" allocates nothing and keeps the
geometry; views and reshapes stay meta with torch's strides; tensor(data, device="meta")
keeps shape and dtype only; copying out raises NotImplementedError("Cannot copy out of
meta tensor; no data!"); writing into a meta tensor is a no-op; repr prints '...' and the
size; elementwise ops, reductions, matmul and softmax return meta results of the right
shape and dtype; kernels that need data name the op and the Meta backend.
"""
import pickle

import numpy as np
import pytest

import shardopt as so

META = "meta"
COPY_OUT = "Cannot copy out of meta tensor; no data!"


def test_device_object_and_flags():
    d = so.device("meta")
    assert d.type == "meta" and d.index is None
    assert str(d) == "meta" and repr(d) == "device(type='meta')"
    assert d == so.device(META) and d != so.device("cpu")
    t = so.empty(2, 3, device=d)
    assert t.is_meta and not t.is_cuda
    assert t.device == so.device("meta")
    assert not so.empty(2).is_meta
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda, meta"):
        so.device("metal")


@pytest.mark.parametrize("make", [
    lambda: so.empty(2, 3, device=META),
    lambda: so.zeros(2, 3, device=META),
    lambda: so.ones(2, 3, device=META),
    lambda: so.full((2, 3), 7.0, device=META),
    lambda: so.rand(2, 3, device=META),
    lambda: so.randn(2, 3, device=META),
    lambda: so.empty_like(so.ones(2, 3), device=META),
    lambda: so.zeros_like(so.empty(2, 3, device=META)),
    lambda: so.ones(2, 3).to(META),
    lambda: so.ones(2, 3).to(device=so.device(META)),
])
def test_creation_has_geometry_and_no_data(make):
    t = make()
    assert t.is_meta
    assert t.shape == so.Size([2, 3]) and t.stride() == (3, 1)
    assert t.dtype == so.float32 and t.element_size() == 4
    assert t.data_ptr() == 0


def test_tensor_from_data_keeps_shape_and_dtype():
    t = so.tensor([1, 2, 3], device=META)
    assert t.is_meta and t.shape == (3,) and t.dtype == so.int64
    t = so.tensor([[1.5, 2.5]], device=META, dtype=so.float64)
    assert t.shape == (1, 2) and t.dtype == so.float64


def test_views_stay_meta_with_torch_strides():
    t = so.empty(2, 3, 4, device=META)
    cases = [
        (t.view(6, 4), (6, 4), (4, 1)),
        (t.reshape(-1), (24,), (1,)),
        (t.transpose(0, 2), (4, 3, 2), (1, 4, 12)),
        (t.permute(2, 0, 1), (4, 2, 3), (1, 12, 4)),
        (t[0].t(), (4, 3), (1, 4)),
        (t.narrow(1, 1, 2), (2, 2, 4), (12, 4, 1)),
        (t[:, 1:, ::2], (2, 2, 2), (12, 4, 2)),
        (t[1, 2], (4,), (1,)),
        (t[None].expand(5, 2, 3, 4), (5, 2, 3, 4), (0, 12, 4, 1)),
        (t.detach(), (2, 3, 4), (12, 4, 1)),
    ]
    for v, shape, strides in cases:
        assert v.is_meta and tuple(v.shape) == shape and v.stride() == strides
    assert not t.transpose(0, 2).is_contiguous() and t.is_contiguous()
    assert t.dim() == 3 and t.numel() == 24 and t.size(1) == 3
    # reshape of a non-contiguous meta tensor needs a copy: it is a fresh meta tensor
    r = t.transpose(0, 2).reshape(-1)
    assert r.is_meta and r.shape == (24,)
    assert t.transpose(0, 2).contiguous().stride() == (6, 2, 1)


def test_requires_grad_and_autograd_geometry():
    t = so.empty(3, device=META).requires_grad_()
    assert t.requires_grad and t.is_meta
    y = (t * 2).sum()
    assert y.is_meta and y.shape == () and y.grad_fn is not None
    y.backward(so.ones((), device=META))
    assert t.grad.is_meta and t.grad.shape == (3,)


@pytest.mark.parametrize("read", [
    lambda t: t.cpu(), lambda t: t.to("cpu"), lambda t: t.tolist(),
    lambda t: so.ones(2, 3).copy_(t), lambda t: t.numpy(force=True),
])
def test_copying_out_raises(read):
    with pytest.raises(NotImplementedError, match=COPY_OUT):
        read(so.empty(2, 3, device=META))


def test_scalar_and_numpy_reads_raise_like_torch():
    with pytest.raises(RuntimeError, match="cannot be called on meta tensors"):
        so.empty(1, device=META).item()
    with pytest.raises(RuntimeError, match="cannot be called on meta tensors"):
        bool(so.empty(1, device=META))
    with pytest.raises(TypeError, match="can't convert meta device type tensor to numpy"):
        so.empty(2, device=META).numpy()
    with pytest.raises(TypeError, match="can't convert meta"):
        np.asarray(so.empty(2, device=META))


def test_writes_into_meta_are_no_ops():
    t = so.empty(2, 3, device=META)
    assert t.copy_(so.ones(2, 3)) is t and t.is_meta
    t.fill_(3.0)
    t.zero_()
    t.uniform_()
    with pytest.raises(RuntimeError):  # shapes are still checked
        t.copy_(so.ones(4))


def test_repr_matches_torch():
    assert repr(so.empty(3, device=META)) == "tensor(..., device='meta', size=(3,))"
    assert (repr(so.empty(2, 3, device=META, dtype=so.int64))
            == "tensor(..., device='meta', size=(2, 3), dtype=shardopt.int64)")
    assert repr(so.empty(0, device=META)) == "tensor(..., device='meta', size=(0,))"
    assert repr(so.empty((), device=META)) == "tensor(..., device='meta', size=())"
    t = so.empty(3, device=META, requires_grad=True)
    assert repr(t) == "tensor(..., device='meta', size=(3,), requires_grad=True)"


def test_shape_inference_for_math():
    a = so.empty(2, 3, device=META)
    b = so.empty(3, 4, device=META)
    out = [
        (a + 1, (2, 3), so.float32), (a * a, (2, 3), so.float32),
        (a.exp(), (2, 3), so.float32), (a > 0, (2, 3), so.bool),
        (a + so.empty(3, device=META, dtype=so.float64), (2, 3), so.float64),
        (a.sum(), (), so.float32), (a.mean(1), (2,), so.float32),
        (a.sum(0, keepdim=True), (1, 3), so.float32), (a.argmax(), (), so.int64),
        (a @ b, (2, 4), so.float32), (a.softmax(-1), (2, 3), so.float32),
        (so.cat([a, a]), (4, 3), so.float32), (so.stack([a, a]), (2, 2, 3), so.float32),
        (so.nn.functional.linear(a, so.empty(5, 3, device=META)), (2, 5), so.float32),
    ]
    for t, shape, dtype in out:
        assert t.is_meta and tuple(t.shape) == shape and t.dtype == dtype


@pytest.mark.parametrize("op,name", [
    (lambda t: t.sort(), "sort"), (lambda t: t.cumsum(0), "cumsum"),
    (lambda t: so.nn.functional.dropout(t, 0.5), "dropout"),
    (lambda t: t[so.tensor([0], device=META)], "index"),
    (lambda t: so.nn.functional.cross_entropy(t, so.tensor([0, 1], device=META)),
     "cross_entropy"),
])
def test_data_kernels_name_the_op_and_meta(op, name):
    with pytest.raises(NotImplementedError, match=f"'{name}'.*'Meta' backend"):
        op(so.empty(2, 3, device=META))


def test_complex_meta():
    z = so.ones(2, 3, dtype=so.complex64, device=META)
    assert z.is_meta and z.dtype == so.complex64
    assert (z + z).is_meta and (z * z).shape == (2, 3)
    assert z.real.is_meta and z.real.dtype == so.float32
    assert z.sum().is_meta and z.sum().dtype == so.complex64
    with pytest.raises(NotImplementedError, match=COPY_OUT):
        z.cpu()


def test_devices_do_not_mix():
    with pytest.raises(RuntimeError, match="same device"):
        so.empty(2, device=META) + so.ones(2)


def test_optimizer_step_raises():
    p = so.nn.Parameter(so.empty(3, device=META))
    p.grad = so.empty(3, device=META)
    for opt in (so.optim.SGD([p], lr=0.1, momentum=0.9), so.optim.Adam([p])):
        with pytest.raises(NotImplementedError, match="Meta"):
            opt.step()


def test_generator_and_pickle():
    with pytest.raises(RuntimeError, match="meta"):
        so.Generator(device=META)
    t = so.empty(2, 3, device=META, dtype=so.float64, requires_grad=True)
    u = pickle.loads(pickle.dumps(t))
    assert u.is_meta and u.shape == (2, 3) and u.dtype == so.float64 and u.requires_grad
    assert not t.is_pinned()


def test_against_torch_where_installed():
    torch = pytest.importorskip("torch")
    for shape in [(3,), (2, 3), (0,), ()]:
        ours = repr(so.empty(shape, device=META)).replace("shardopt.", "torch.")
        assert ours == repr(torch.empty(shape, device="meta"))
    a, ta = so.empty(2, 3, 4, device=META), torch.empty(2, 3, 4, device="meta")
    assert a.permute(1, 2, 0).stride() == ta.permute(1, 2, 0).stride()
    with pytest.raises(NotImplementedError) as ours:
        a.cpu()
    with pytest.raises(NotImplementedError) as theirs:
        ta.cpu()
    assert str(ours.value) == str(theirs.value)
