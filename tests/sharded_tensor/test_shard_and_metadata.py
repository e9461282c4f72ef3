"""Shard, TensorProperties, ShardedTensorMetadata and the layout / memory-format singletons
(torch_shard_spec.md §3), including the pickle round trip of ShardedTensorMetadata over every
combination of tensor properties that §3 / §8 [T-ST] call for."""
import copy
import itertools
import pickle
import re

import numpy as np
import pytest

import shardopt
from shardopt import _C
from shardopt._remote_device import _remote_device
from shardopt.sharded_tensor import (
    Shard,
    ShardedTensorMetadata,
    ShardMetadata,
    TensorProperties,
)
from shardopt.sharded_tensor.metadata import MEM_FORMAT_ENCODING

RNG = np.random.default_rng()


def cpu_tensor(*shape, dtype=np.float32):
    return _C.from_numpy(np.array(RNG.standard_normal(shape), dtype=dtype)).clone()


# ------------------------------------------------------------------ layouts

def test_layout_singletons():
    assert repr(shardopt.strided) == "shardopt.strided"
    assert repr(shardopt.contiguous_format) == "shardopt.contiguous_format"
    for obj in (shardopt.strided, shardopt.sparse_coo, shardopt.contiguous_format,
                shardopt.channels_last, shardopt.preserve_format):
        assert pickle.loads(pickle.dumps(obj)) is obj
        assert copy.deepcopy(obj) is obj
    assert isinstance(shardopt.strided, shardopt.layout)
    assert isinstance(shardopt.channels_last, shardopt.memory_format)
    assert shardopt.strided != shardopt.sparse_coo
    assert shardopt.contiguous_format != shardopt.channels_last


# ------------------------------------------------------------------ Shard

def test_shard_ok_and_accessors():
    t = cpu_tensor(3, 4)
    md = ShardMetadata([3, 0], [3, 4], "rank:1/cpu")
    s = Shard(t, md)
    assert s.tensor is t and s.metadata is md
    s2 = Shard(tensor=t, metadata=ShardMetadata([0, 0], [3, 4]))      # None placement allowed
    assert s2.metadata.placement is None
    assert repr(s).startswith("Shard(tensor=") and "metadata=ShardMetadata(" in repr(s)
    s.tensor = cpu_tensor(7)                 # later reassignment is not validated (as torch)
    assert s.tensor.shape == (7,)
    with pytest.raises(TypeError):
        hash(s)
    with pytest.raises(AttributeError):
        s.extra = 1


def test_shard_size_mismatch():
    t = cpu_tensor(3, 4)
    with pytest.raises(ValueError, match=re.escape(
            "Shard tensor size does not match with metadata.shard_lengths! Found shard tensor "
            "size: [3, 4], metadata.shard_lengths: [4, 3], ")):
        Shard(t, ShardMetadata([0, 0], [4, 3], "rank:0/cpu"))
    with pytest.raises(ValueError, match="does not match with metadata.shard_lengths"):
        Shard(t, ShardMetadata([0], [12], "rank:0/cpu"))


def test_shard_device_mismatch():
    t = cpu_tensor(2, 2)
    with pytest.raises(ValueError, match=re.escape(
            "Local shard tensor device does not match with local Shard's placement! Found local "
            "shard tensor device: cpu, local shard metadata placement device: cuda:0")):
        Shard(t, ShardMetadata([0, 0], [2, 2], "rank:0/cuda:0"))
    with pytest.raises(ValueError, match="does not match with local Shard's placement"):
        Shard(t, ShardMetadata([0, 0], [2, 2], "rank:0/cpu:0"))      # cpu:0 != cpu, as torch


def test_shard_bad_inputs_raise():
    with pytest.raises(AttributeError):
        Shard(object(), ShardMetadata([0], [1]))
    with pytest.raises(AttributeError):
        Shard(cpu_tensor(1), object())
    with pytest.raises(TypeError):
        Shard(cpu_tensor(1))


@pytest.mark.parametrize("shape", [(3, 4), (0, 5), (6,), ()])
def test_from_tensor_and_offsets(shape):
    t = cpu_tensor(*shape)
    offsets = [2 * i for i in range(len(shape))]
    s = Shard.from_tensor_and_offsets(t, offsets, 3)
    assert type(s) is Shard and s.tensor is t
    assert s.metadata == ShardMetadata(offsets, list(shape), "rank:3/cpu")
    assert s.metadata.placement == _remote_device("rank:3/cpu")
    s = Shard.from_tensor_and_offsets(tensor=t, shard_offsets=offsets, rank=0)
    assert str(s.metadata.placement) == "rank:0/cpu"

    class MyShard(Shard):
        pass

    assert type(MyShard.from_tensor_and_offsets(t, offsets, 1)) is MyShard


def test_shard_pickle_and_deepcopy():
    t = cpu_tensor(2, 3, dtype=np.float64)
    s = Shard.from_tensor_and_offsets(t, [4, 0], 2)
    for c in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert type(c) is Shard and c.metadata == s.metadata
        assert c.tensor is not t and c.tensor.dtype == shardopt.float64
        np.testing.assert_array_equal(c.tensor.numpy(), t.numpy())
    assert Shard(t, s.metadata) == s          # dataclass ==: same tensor object, equal metadata


# ------------------------------------------------------------------ TensorProperties

def test_tensor_properties_defaults_and_from_tensor():
    p = TensorProperties()
    assert p.dtype == shardopt.float32 and p.layout is shardopt.strided
    assert p.requires_grad is False and p.memory_format is shardopt.contiguous_format
    assert p.pin_memory is False
    t = cpu_tensor(2, dtype=np.float64)
    t.requires_grad = True
    q = TensorProperties.create_from_tensor(t)
    assert q == TensorProperties(dtype=shardopt.float64, requires_grad=True)


def test_tensor_properties_pickles_memory_format_as_code():
    p = TensorProperties(memory_format=shardopt.channels_last)
    assert p.__getstate__()[3] == MEM_FORMAT_ENCODING.TORCH_CHANNELS_LAST
    q = pickle.loads(pickle.dumps(p))
    assert q == p and q.memory_format is shardopt.channels_last
    with pytest.raises(RuntimeError, match="Invalid torch.memory_format: bogus"):
        pickle.dumps(TensorProperties(memory_format="bogus"))
    r = TensorProperties()
    with pytest.raises(RuntimeError, match="Invalid torch.memory_format encoding: 7"):
        r.__setstate__((shardopt.float32, shardopt.strided, False, 7, False))


# ------------------------------------------------------------------ ShardedTensorMetadata

def test_sharded_tensor_metadata_defaults():
    a, b = ShardedTensorMetadata(), ShardedTensorMetadata()
    assert a.shards_metadata == [] and a.shards_metadata is not b.shards_metadata
    assert a.size == shardopt.Size([]) and a.tensor_properties == TensorProperties()
    assert a == b


ALL_DTYPES = [shardopt.float32, shardopt.float64, shardopt.float16, shardopt.bfloat16,
              shardopt.int32, shardopt.int64, shardopt.bool]


def _quadrants(n):
    """A 2n x 2n tensor cut into four n x n blocks, one per rank, on cuda:<rank>."""
    corners = [(0, 0), (0, n), (n, 0), (n, n)]
    return [ShardMetadata([r, c], [n, n], f"rank:{k}/cuda:{k}") for k, (r, c) in enumerate(corners)]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_metadata_pickle_round_trip(dtype):
    # every layout x requires_grad x memory_format x pin_memory for this dtype
    combos = itertools.product(
        (shardopt.strided, shardopt.sparse_coo),
        (False, True),
        (shardopt.contiguous_format, shardopt.channels_last, shardopt.preserve_format),
        (False, True),
    )
    for layout, grad, fmt, pinned in combos:
        props = TensorProperties(dtype=dtype, layout=layout, requires_grad=grad,
                                 memory_format=fmt, pin_memory=pinned)
        original = ShardedTensorMetadata(_quadrants(5), shardopt.Size([10, 10]), props)
        restored = pickle.loads(pickle.dumps(original))
        assert restored == original and restored is not original
        got = restored.tensor_properties
        # singletons come back as the same objects, not look-alikes
        assert got.dtype is dtype and got.layout is layout and got.memory_format is fmt
        assert (got.requires_grad, got.pin_memory) == (grad, pinned)
        assert type(restored.size) is shardopt.Size and restored.size == (10, 10)
        for before, after in zip(original.shards_metadata, restored.shards_metadata, strict=True):
            assert type(after.placement) is _remote_device
            assert after == before and after is not before


def test_sharded_tensor_metadata_inequality():
    base = ShardedTensorMetadata([ShardMetadata([0], [4], "rank:0/cpu")], shardopt.Size([4]))
    assert base != ShardedTensorMetadata([ShardMetadata([0], [4], "rank:1/cpu")], shardopt.Size([4]))
    assert base != ShardedTensorMetadata(base.shards_metadata, shardopt.Size([5]))
    assert base != ShardedTensorMetadata(base.shards_metadata, shardopt.Size([4]),
                                         TensorProperties(requires_grad=True))
    assert copy.deepcopy(base) == base
