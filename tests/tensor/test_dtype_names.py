"""dtypes torch code names that shardopt has no tensors of yet (uint8, int8, int16/short):
the dtype objects exist with torch's properties and pickle by name (so TensorProperties and
ShardedTensorMetadata holding them round-trip), and every attempt to make a tensor of one
raises TypeError naming it.  complex64/complex128 have tensors: tests/tensor/test_complex.py."""
import pickle

import numpy as np
import pytest

import shardopt as so
from shardopt.sharded_tensor import ShardedTensorMetadata, ShardMetadata, TensorProperties

NAME_ONLY = [(so.uint8, "uint8", 1, False, False), (so.int8, "int8", 1, False, True),
             (so.int16, "int16", 2, False, True)]


def test_torch_aliases():
    assert so.cfloat is so.complex64 and so.cdouble is so.complex128 and so.short is so.int16


@pytest.mark.parametrize("dt, name, itemsize, is_complex, is_signed", NAME_ONLY)
def test_properties_and_pickle(dt, name, itemsize, is_complex, is_signed):
    assert repr(dt) == f"shardopt.{name}"
    assert dt.itemsize == itemsize and dt.is_complex is is_complex
    assert dt.is_signed is is_signed and dt.is_floating_point is False
    assert pickle.loads(pickle.dumps(dt)) is dt
    props = TensorProperties(dt, so.strided, True, so.channels_last, False)
    md = ShardedTensorMetadata([ShardMetadata([0], [4], "rank:0/cpu")], so.Size([4]), props)
    assert pickle.loads(pickle.dumps(md)) == md


def test_tensor_dtypes_are_not_complex():
    for dt in (so.float32, so.float64, so.float16, so.bfloat16, so.int32, so.int64, so.bool):
        assert dt.is_complex is False


@pytest.mark.parametrize("dt, name, itemsize, is_complex, is_signed", NAME_ONLY)
@pytest.mark.parametrize("make", [
    lambda dt: so.zeros(2, dtype=dt), lambda dt: so.ones(2, dtype=dt),
    lambda dt: so.empty(2, dtype=dt), lambda dt: so.full((2,), 1, dtype=dt),
    lambda dt: so.tensor([1, 2], dtype=dt), lambda dt: so.ones(2).to(dt),
    lambda dt: so.ones(2).new_zeros(2, dtype=dt), lambda dt: so.zeros(2, dtype=dt._name),
])
def test_creating_a_tensor_raises_naming_the_dtype(make, dt, name, itemsize, is_complex,
                                                    is_signed):
    with pytest.raises(TypeError, match=f"no tensors of dtype shardopt.{name}"):
        make(dt)


def test_numpy_int8_is_refused():
    with pytest.raises(TypeError, match="int8"):
        so.from_numpy(np.zeros(2, np.int8))
