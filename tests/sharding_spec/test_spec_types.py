"""Placements, ShardMetadata, the spec types and the validators beyond the §8 scenarios in
test_sharding_spec.py: exact messages, dataclass-like behaviour (==, hash, repr, pickle,
deepcopy), the chunk rule's empty trailing shards, the zero-volume exemptions (deviation
§12.4), a brute-force cross-check of the overlap sweep and its speed on 32x32 / 64x64 grids."""
import copy
import itertools
import pickle
import random
import re
import time

import pytest

import shardopt
from shardopt import _C
from shardopt._remote_device import _remote_device
from shardopt.sharded_tensor import ShardedTensorMetadata, TensorProperties
from shardopt.sharding_spec import (
    ChunkShardingSpec,
    DevicePlacementSpec,
    EnumerableShardingSpec,
    PlacementSpec,
    ShardingSpec,
    ShardMetadata,
    _infer_sharding_spec_from_shards_metadata,
)
from shardopt.sharding_spec._internals import (
    check_tensor,
    get_chunk_sharding_params,
    get_chunked_dim_size,
    get_split_size,
    validate_non_overlapping_shards_metadata,
)

SM = ShardMetadata


# ------------------------------------------------------------------ _remote_device

@pytest.mark.parametrize("spec,worker,rank,device,text", [
    ("cuda:0", None, None, "cuda:0", "cuda:0"),
    ("cpu", None, None, "cpu", "cpu"),
    ("rank:0/cuda:0", None, 0, "cuda:0", "rank:0/cuda:0"),
    ("rank:3/cpu", None, 3, "cpu", "rank:3/cpu"),
    ("rank:2", None, 2, "cpu", "rank:2/cpu"),
    ("rank:007/cuda:1", None, 7, "cuda:1", "rank:7/cuda:1"),
    ("trainer0/cuda:1", "trainer0", None, "cuda:1", "trainer0/cuda:1"),
    ("worker1", "worker1", None, "cpu", "worker1/cpu"),
])
def test_remote_device_forms(spec, worker, rank, device, text):
    rd = _remote_device(spec)
    assert rd.worker_name() == worker
    assert rd.rank() == rank
    assert rd.device() == shardopt.device(device)
    assert isinstance(rd.device(), shardopt.device)
    assert str(rd) == repr(rd) == text
    again = pickle.loads(pickle.dumps(rd))
    assert again == rd and hash(again) == hash(rd) and again is not rd
    assert _remote_device(text) == rd
    assert copy.deepcopy(rd) == rd


def test_remote_device_from_device_object():
    rd = _remote_device(shardopt.device(1))
    assert rd.device() == shardopt.device("cuda:1") and rd.rank() is None
    assert str(rd) == "cuda:1"
    assert _remote_device(shardopt.device("cpu")) == _remote_device("cpu")


def test_remote_device_eq_hash():
    a, b = _remote_device("rank:1/cuda:1"), _remote_device("rank:1/cuda:1")
    assert a == b and not (a != b) and hash(a) == hash(b)
    assert hash(a) == hash(None) ^ hash(shardopt.device("cuda:1")) ^ hash(1)
    assert len({a, b, _remote_device("rank:1/cuda:0"), _remote_device("rank:0/cuda:1")}) == 3
    assert a != _remote_device("rank:1/cpu")
    assert a != _remote_device("cuda:1")          # rank None vs 1
    assert _remote_device("w/cpu") != _remote_device("rank:0/cpu")
    assert (a == "rank:1/cuda:1") is False        # a string is not a placement
    assert a != 1


@pytest.mark.parametrize("spec,exc,msg", [
    ("cuda:foo", ValueError, "Could not parse remote_device: cuda:foo. The valid format is "
                             "'<workername>/<device>' or 'rank:<rank>/<device>' or '<device>'"),
    ("foo:0", ValueError, "Could not parse remote_device: foo:0"),
    ("random:0", ValueError, "Could not parse remote_device"),
    ("rank:foo", ValueError, "Could not parse remote_device"),
    ("rank:-1", ValueError, "Could not parse remote_device"),
    ("Rank:1/cpu", ValueError, "Could not parse remote_device"),
    ("rank:1:2/cpu", ValueError, "Could not parse remote_device"),
    ("a/b/c", ValueError, "Could not parse remote_device"),
    ("/cpu", ValueError, "Could not parse remote_device"),
    ("", ValueError, "Could not parse remote_device"),
    ("rank:0/cuda:foo", RuntimeError, "Invalid device string: 'cuda:foo'"),
    ("rank:0/cpu2", RuntimeError, "Invalid device string: 'cpu2'"),
    ("rank:0/cuda:01", RuntimeError, "Invalid device string"),
    ("w/", RuntimeError, "Invalid device string"),
    ("rank:0/foo", RuntimeError, "Expected one of"),
    ("rank:0/random:0", RuntimeError, "Expected one of"),
])
def test_remote_device_errors(spec, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        _remote_device(spec)


@pytest.mark.parametrize("bad", [0, None, 1.5, ["rank:0"], b"rank:0"])
def test_remote_device_type_error(bad):
    with pytest.raises(TypeError, match=re.escape(f"Invalid type for remote_device: {type(bad)}")):
        _remote_device(bad)


# ------------------------------------------------------------------ ShardMetadata

def test_shard_metadata_fields_and_parsing():
    off, sz = [0, 5], [5, 5]
    md = SM(off, sz, "rank:1/cuda:1")
    assert md.shard_offsets is off and md.shard_sizes is sz       # kept, as torch keeps them
    assert md.placement == _remote_device("rank:1/cuda:1")
    rd = _remote_device("rank:0/cpu")
    assert SM([0], [1], rd).placement is rd
    assert SM([0], [1]).placement is None
    t = SM((1, 2), (3, 4), None)
    assert t.shard_offsets == [1, 2] and t.shard_sizes == [3, 4]
    assert SM(shard_offsets=[], shard_sizes=[]).shard_offsets == []
    with pytest.raises(AttributeError):
        md.extra = 1                                              # slots only
    md.placement = None                                           # fields stay writable
    assert md.placement is None


def test_shard_metadata_errors():
    with pytest.raises(ValueError, match=re.escape(
            "shard_offsets and shard_sizes should have the same number of elements, "
            "found 2 and [1] respectively")):
        SM([0, 0], [1])
    with pytest.raises(ValueError, match="^shard_offsets should be >=0$"):
        SM([0, -1], [1, 1])
    with pytest.raises(ValueError, match="^shard_sizes should be >= 0$"):
        SM([0, 0], [1, -1])
    with pytest.raises(ValueError, match="Could not parse remote_device"):
        SM([0], [1], "cuda:foo")
    with pytest.raises(TypeError):
        SM(5, [1])
    with pytest.raises(TypeError):
        SM([0])


def test_shard_metadata_eq_hash_repr():
    a = SM([0, 0], [5, 5], "rank:0/cuda:0")
    b = SM([0, 0], [5, 5], "rank:0/cuda:0")
    assert a == b and hash(a) == hash(b) and not (a != b)
    assert {a: 1}[b] == 1
    assert a != SM([0, 0], [5, 5], "rank:1/cuda:0")
    assert a != SM([0, 1], [5, 5], "rank:0/cuda:0")
    assert a != SM([0, 0], [5, 4], "rank:0/cuda:0")
    assert a != SM([0, 0], [5, 5])
    assert len({a, b, SM([0, 0], [5, 5]), SM([5, 0], [5, 5])}) == 3
    assert repr(a) == "ShardMetadata(shard_offsets=[0, 0], shard_sizes=[5, 5], placement=rank:0/cuda:0)"
    assert repr(SM([1], [2])) == "ShardMetadata(shard_offsets=[1], shard_sizes=[2], placement=None)"
    assert (a == object()) is False


class Tagged(SM):
    """A Python subclass with instance attributes (module level so pickle can find it)."""


def test_shard_metadata_pickle_deepcopy_subclass():
    a = SM([0, 3], [2, 7], "rank:2/cpu")
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a)):
        assert b == a and b.shard_offsets is not a.shard_offsets
        assert type(b.placement) is _remote_device
    c = copy.copy(a)
    assert c == a and c.shard_offsets is a.shard_offsets

    t = Tagged([0], [4], "rank:0/cpu")
    t.tag = "x"
    u = pickle.loads(pickle.dumps(t))
    assert type(u) is Tagged and u.tag == "x" and u.shard_sizes == [4]
    v = copy.deepcopy(t)
    assert type(v) is Tagged and v.tag == "x" and v == t
    assert t != SM([0], [4], "rank:0/cpu")   # dataclass ==: same class only


# ------------------------------------------------------------------ ChunkShardingSpec

def _spec(n, dim=0):
    return ChunkShardingSpec(dim, [f"rank:{r}/cpu" for r in range(n)])


@pytest.mark.parametrize("D,sizes,offsets", [
    (10, [3, 3, 3, 1], [0, 3, 6, 9]),
    (9, [3, 3, 3, 0], [0, 3, 6, 9]),
    (2, [1, 1, 0, 0], [0, 1, 2, 3]),
    (0, [0, 0, 0, 0], [0, 0, 0, 0]),
    (13, [4, 4, 4, 1], [0, 4, 8, 12]),
])
@pytest.mark.parametrize("dim", [0, -2, 1, -1])
def test_chunk_build_metadata(D, sizes, offsets, dim):
    spec = _spec(4, dim)
    shape = [D, 7] if dim in (0, -2) else [7, D]
    d = dim % 2
    props = TensorProperties(dtype=shardopt.float64, requires_grad=True)
    meta = spec.build_metadata(shardopt.Size(shape), props)
    assert isinstance(meta, ShardedTensorMetadata)
    assert meta.size == shardopt.Size(shape) and meta.tensor_properties is props
    assert len(meta.shards_metadata) == 4
    for r, md in enumerate(meta.shards_metadata):
        exp_off, exp_sz = [0, 0], list(shape)
        exp_off[d], exp_sz[d] = offsets[r], sizes[r]
        assert md.shard_offsets == exp_off and md.shard_sizes == exp_sz
        assert md.placement is spec.placements[r]          # the same placement objects
    # zero-size trailing shards keep torch's unclamped offsets and still validate (§12.4)
    check_tensor(meta.shards_metadata, shape)
    EnumerableShardingSpec(meta.shards_metadata)


@pytest.mark.parametrize("dim", [2, 3, 4, -3, -4, -5, 2**70])
def test_chunk_invalid_dim(dim):
    with pytest.raises(ValueError, match=re.escape(f"Invalid sharding dim: {dim}")):
        _spec(4, dim).build_metadata(shardopt.Size([4, 4]), TensorProperties())


def test_chunk_spec_construction():
    pls = ["rank:0/cpu", _remote_device("rank:1/cpu")]
    keep = pls[1]
    spec = ChunkShardingSpec(dim=1, placements=pls)
    assert spec.placements is pls and all(type(p) is _remote_device for p in pls)
    assert pls[1] is keep                                   # already parsed: kept
    assert ChunkShardingSpec(0, ("rank:0/cpu",)).placements == [_remote_device("rank:0/cpu")]
    assert len(ChunkShardingSpec(0, ["rank:0/cpu", "rank:0/cpu"]).placements) == 2   # repeats ok
    with pytest.raises(ValueError, match="at least one placement"):
        ChunkShardingSpec(0, [])
    with pytest.raises(ValueError, match=re.escape("Sharding dim needs to be an integer, found: 1.0")):
        ChunkShardingSpec(1.0, ["cpu"])
    with pytest.raises(NotImplementedError, match="^ChunkShardingSpec does not support named dimension yet!$"):
        ChunkShardingSpec("N", ["cpu"])
    with pytest.raises(TypeError, match="Invalid type for remote_device"):
        ChunkShardingSpec(0, [None])
    spec.dim = "N"                                          # re-verified at build time
    with pytest.raises(NotImplementedError):
        spec.build_metadata([4, 4], TensorProperties())
    spec.dim, spec.placements = 0, []
    with pytest.raises(ValueError, match="at least one placement"):
        spec.build_metadata([4, 4], TensorProperties())


def test_chunk_spec_dataclass_behaviour():
    a, b = _spec(2), _spec(2)
    assert a == b and a != _spec(2, 1) and a != _spec(3)
    assert ChunkShardingSpec(-1, ["cpu"]) != ChunkShardingSpec(1, ["cpu"])
    assert repr(a) == "ChunkShardingSpec(dim=0, placements=[rank:0/cpu, rank:1/cpu])"
    with pytest.raises(TypeError):
        hash(a)
    for c in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a)):
        assert c == a and c.placements is not a.placements
    assert isinstance(a, ShardingSpec) and issubclass(ChunkShardingSpec, ShardingSpec)
    assert not isinstance(a, PlacementSpec)


def test_chunk_spec_shard_hook_and_subclass():
    import numpy as np
    t = _C.from_numpy(np.zeros((4, 4), np.float32))
    # shard() forwards to shardopt.sharded_tensor._shard_chunk, which needs a process group
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        _spec(2).shard(t)

    class Mine(ChunkShardingSpec):
        def shard(self, tensor, src_rank=0, process_group=None):
            return ("sharded", src_rank)

    m = Mine(0, ["rank:0/cpu"])
    assert m.shard(t, src_rank=3) == ("sharded", 3) and isinstance(m, ShardingSpec)
    assert repr(m) == "test_chunk_spec_shard_hook_and_subclass.<locals>.Mine(dim=0, placements=[rank:0/cpu])"
    assert m.build_metadata([3, 2], TensorProperties()).shards_metadata[0].shard_sizes == [3, 2]


# ------------------------------------------------------------------ Enumerable / DevicePlacement

def test_enumerable_spec():
    shards = [SM([0, 0], [2, 4], "rank:0/cpu"), SM([2, 0], [2, 4], "rank:1/cpu")]
    spec = EnumerableShardingSpec(shards)
    assert spec.shards is shards and isinstance(spec, ShardingSpec)
    meta = spec.build_metadata(shardopt.Size([4, 4]), TensorProperties())
    assert meta.shards_metadata is shards and meta.size == (4, 4)
    assert spec == EnumerableShardingSpec(list(shards)) and spec != EnumerableShardingSpec(shards[:1])
    assert repr(spec).startswith("EnumerableShardingSpec(shards=[ShardMetadata(shard_offsets=[0, 0]")
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(ValueError, match="Total volume of shards: 16 does not match tensor volume: 20"):
        spec.build_metadata([5, 4], TensorProperties())
    with pytest.raises(NotImplementedError, match="^EnumerableShardingSpec.shard not implemented yet!$"):
        spec.shard(None)
    with pytest.raises(ValueError, match=re.escape("Empty shard list provided: []")):
        EnumerableShardingSpec([])
    with pytest.raises(ValueError, match="^Found inconsistent ranks for shards: 2 and 3$"):
        EnumerableShardingSpec([SM([0, 0], [1, 1]), SM([0, 0, 0], [1, 1, 1])])


def test_device_placement_spec():
    d = DevicePlacementSpec("rank:1/cuda:1")
    assert d.device == _remote_device("rank:1/cuda:1")
    rd = _remote_device("cpu")
    assert DevicePlacementSpec(rd).device is rd
    assert DevicePlacementSpec(device=shardopt.device(0)).device == _remote_device("cuda:0")
    assert d == DevicePlacementSpec("rank:1/cuda:1") and d != DevicePlacementSpec("cuda:1")
    assert repr(d) == "DevicePlacementSpec(device=rank:1/cuda:1)"
    assert isinstance(d, PlacementSpec) and not isinstance(d, ShardingSpec)
    assert pickle.loads(pickle.dumps(d)) == d


# ------------------------------------------------------------------ chunk helpers

def test_chunk_helpers_edges():
    with pytest.raises(ZeroDivisionError):
        get_split_size(5, 0)
    assert get_split_size(0, 4) == 0 and get_chunked_dim_size(0, 0, 3) == 0
    for D in range(0, 30):
        for n in range(1, 9):
            s = get_split_size(D, n)
            sizes = [get_chunked_dim_size(D, s, i) for i in range(n)]
            assert sum(sizes) == D and all(x >= 0 for x in sizes)
            assert sizes == sorted(sizes, reverse=True) and max(sizes) == s
    spec = ChunkShardingSpec(0, ["rank:2/cpu", "rank:0/cpu", "rank:1/cpu"])
    assert get_chunk_sharding_params(10, 3, spec, 2) == (0, 4)
    assert get_chunk_sharding_params(10, 3, spec, 1) == (8, 2)
    with pytest.raises(ValueError, match="rank 5 has no placement"):
        get_chunk_sharding_params(10, 3, spec, 5)


# ------------------------------------------------------------------ infer

def test_infer_chunk_with_empty_trailing_shards():
    spec = _spec(4)
    meta = spec.build_metadata([2, 3], TensorProperties())
    shuffled = [meta.shards_metadata[i] for i in (2, 0, 3, 1)]
    got = _infer_sharding_spec_from_shards_metadata(shuffled)
    assert isinstance(got, ChunkShardingSpec) and got.dim == 0
    assert got.placements == spec.placements


def test_infer_enumerable_cases():
    single = [SM([0, 0], [4, 4], "rank:0/cpu")]           # all-zero offsets: undecidable
    got = _infer_sharding_spec_from_shards_metadata(single)
    assert isinstance(got, EnumerableShardingSpec) and got.shards == single
    with pytest.raises(ValueError, match="Empty shard list provided"):
        _infer_sharding_spec_from_shards_metadata([])
    uneven = [SM([0], [2], "rank:0/cpu"), SM([2], [4], "rank:1/cpu")]
    assert isinstance(_infer_sharding_spec_from_shards_metadata(uneven), EnumerableShardingSpec)


# ------------------------------------------------------------------ validators

def test_overlap_message_names_both_shards():
    a, b = SM([0, 0], [4, 4], "rank:0/cpu"), SM([0, 0], [4, 4], "rank:1/cpu")
    with pytest.raises(ValueError, match=re.escape(f"Shards {a!r} and {b!r} overlap")):
        validate_non_overlapping_shards_metadata([a, b])
    c = SM([3], [2], "rank:1/cpu")
    d = SM([0], [4], "rank:0/cpu")
    with pytest.raises(ValueError, match=re.escape(f"Shards {d!r} and {c!r} overlap")):
        validate_non_overlapping_shards_metadata([c, d])
    validate_non_overlapping_shards_metadata([])
    validate_non_overlapping_shards_metadata([a])


def test_zero_volume_shards_exempt():
    big = SM([0, 0], [8, 8], "rank:0/cpu")
    inside = SM([3, 3], [0, 5], "rank:1/cpu")             # torch reports this as overlapping
    validate_non_overlapping_shards_metadata([big, inside])
    validate_non_overlapping_shards_metadata([inside, big, SM([4, 4], [2, 0])])
    validate_non_overlapping_shards_metadata([SM([0, 0], [0, 0])] * 5)
    validate_non_overlapping_shards_metadata([SM([2, 2], [0, 3])] * 3)   # torch: (0, 1) overlap
    check_tensor([big, inside, SM([100, 0], [0, 8])], [8, 8])             # out of bounds, empty
    check_tensor([SM([0], [0])], [0])
    with pytest.raises(ValueError, match="overlap"):
        validate_non_overlapping_shards_metadata([big, inside, SM([7, 7], [1, 1])])


def test_check_tensor_messages():
    s = SM([0, 0], [5, 5], "rank:0/cpu")
    with pytest.raises(ValueError, match=re.escape(
            f"Shard offset 0 and length 5 exceeds tensor dim: 3 for shard {s!r}")):
        check_tensor([s], [5, 3])
    with pytest.raises(ValueError, match=re.escape(
            "Total volume of shards: 25 does not match tensor volume: 50, in other words all "
            "the individual shards do not cover the entire tensor")):
        check_tensor([s], [5, 10])
    with pytest.raises(ValueError, match="^Rank of tensor is 3, but shards rank is 2$"):
        check_tensor([s], shardopt.Size([5, 5, 1]))
    with pytest.raises(TypeError):
        check_tensor([s], [5, "x"])
    check_tensor([s], (5, 5))


def _brute_overlap(boxes):
    live = [i for i, (o, z) in enumerate(boxes) if all(z)]
    for i, j in itertools.combinations(live, 2):
        (oi, zi), (oj, zj) = boxes[i], boxes[j]
        if all(oi[d] < oj[d] + zj[d] and oj[d] < oi[d] + zi[d] for d in range(len(oi))):
            return True
    return False


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_overlap_matches_brute_force(ndim):
    rng = random.Random(1234 + ndim)
    seen = {True: 0, False: 0}
    for _ in range(400):
        n = rng.randint(2, 9)
        boxes = [([rng.randint(0, 6) for _ in range(ndim)], [rng.randint(0, 4) for _ in range(ndim)])
                 for _ in range(n)]
        # a fraction of the cases: a clean partition, possibly nudged
        if rng.random() < 0.4:
            cuts = [sorted(rng.sample(range(1, 8), 2)) for _ in range(ndim)]
            boxes = []
            for cell in itertools.product(range(3), repeat=ndim):
                o = [([0] + cuts[d])[cell[d]] for d in range(ndim)]
                e = [(cuts[d] + [8])[cell[d]] for d in range(ndim)]
                boxes.append((o, [e[d] - o[d] for d in range(ndim)]))
            rng.shuffle(boxes)
            if rng.random() < 0.5:
                k, d = rng.randrange(len(boxes)), rng.randrange(ndim)
                boxes[k][1][d] += 1
        mds = [SM(o, z, "cpu") for o, z in boxes]
        expect = _brute_overlap(boxes)
        seen[expect] += 1
        if expect:
            with pytest.raises(ValueError, match="overlap") as info:
                validate_non_overlapping_shards_metadata(mds)
            # the two shards named in the message do overlap
            named = re.findall(r"shard_offsets=\[([^\]]*)\], shard_sizes=\[([^\]]*)\]", str(info.value))
            pair = [([int(x) for x in o.split(",")], [int(x) for x in z.split(",")]) for o, z in named]
            assert len(pair) == 2 and _brute_overlap(pair)
        else:
            validate_non_overlapping_shards_metadata(mds)
    assert seen[True] > 50 and seen[False] > 50


@pytest.mark.parametrize("g", [32, 64])
def test_overlap_grid_is_fast(g):
    cells = [SM([r * 3, c * 5], [3, 5], f"rank:{r * g + c}/cpu") for r in range(g) for c in range(g)]
    random.Random(g).shuffle(cells)
    t0 = time.perf_counter()
    validate_non_overlapping_shards_metadata(cells)
    EnumerableShardingSpec(cells).build_metadata([3 * g, 5 * g], TensorProperties())
    elapsed = time.perf_counter() - t0
    # About 0.01 s here; a quadratic Python scan takes seconds.  The wide bound is for
    # loaded CI machines: this guards the algorithm, not the speed.
    assert elapsed < 1.0, f"{g}x{g} grid took {elapsed:.3f}s"
    cells[len(cells) // 2] = SM([3 * (g // 2), 5 * (g // 2) + 1], [3, 5], "cpu")
    with pytest.raises(ValueError, match="overlap"):
        validate_non_overlapping_shards_metadata(cells)


def test_infer_keeps_torch_dim0_quirk():
    # torch tests `if not chunk_sharding_dim`, so a dim-0 decision is overwritten by a later
    # shard sharded on dim 1 instead of falling back to Enumerable; shardopt keeps that.
    mds = [SM([0, 0], [2, 3], "rank:0/cpu"), SM([2, 0], [2, 3], "rank:1/cpu"),
           SM([0, 3], [4, 3], "rank:2/cpu")]
    got = _infer_sharding_spec_from_shards_metadata(mds)
    assert isinstance(got, ChunkShardingSpec) and got.dim == 1
    assert [p.rank() for p in got.placements] == [0, 1, 2]
    # the other order (dim 1 first, then dim 0) is a genuine conflict: Enumerable
    mds = [mds[0], mds[2], mds[1]]
    assert isinstance(_infer_sharding_spec_from_shards_metadata(mds), EnumerableShardingSpec)
