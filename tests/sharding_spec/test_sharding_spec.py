"""Sharding-spec behaviour of torch_shard_spec.md §1-3, organised after the scenarios of
§8 ("test_sharding_spec.py"): placement parsing, ChunkShardingSpec / EnumerableShardingSpec
construction and errors, the chunk-rule helpers and their test vectors, inference of a spec
from shard metadata, the overlap validator, and a user-written ShardingSpec subclass.

Everything here is single-process logic; the distributed uses of specs (factories,
``_shard_tensor``) are tested with the ShardedTensor layer.
"""
import itertools
import random
import re

import pytest

import shardopt
from shardopt._remote_device import _remote_device
from shardopt.sharded_tensor import ShardedTensorMetadata, TensorProperties
from shardopt.sharding_spec import (
    ChunkShardingSpec,
    DevicePlacementSpec,
    EnumerableShardingSpec,
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

PARSE_ERR = "Could not parse remote_device"
OVERLAP_RE = r"Shards ShardMetadata\(.*\) and ShardMetadata\(.*\) overlap"


def block(offsets, sizes, rank=None):
    """ShardMetadata on cpu, with a rank placement when ``rank`` is given."""
    return ShardMetadata(list(offsets), list(sizes), None if rank is None else f"rank:{rank}/cpu")


# ================================================================== §1 placements
# (test_device_placement)

@pytest.mark.parametrize("where,rank,device", [
    ("cuda:0", None, "cuda:0"),
    (shardopt.device(0), None, "cuda:0"),
    (shardopt.device("cuda:0"), None, "cuda:0"),
    ("rank:0/cuda:0", 0, "cuda:0"),
    ("rank:0/cpu", 0, "cpu"),
    ("rank:0", 0, "cpu"),            # a lone worker part defaults to cpu
    ("rank:5/cuda:3", 5, "cuda:3"),
])
def test_device_placement_accepts(where, rank, device):
    spec = DevicePlacementSpec(where)
    assert isinstance(spec.device, _remote_device)
    assert spec.device.rank() == rank
    assert spec.device.worker_name() is None
    assert spec.device.device() == shardopt.device(device)


@pytest.mark.parametrize("where,exc,pattern", [
    ("cuda:foo", ValueError, PARSE_ERR),
    ("foo:0", ValueError, PARSE_ERR),
    ("rank:0/cuda:foo", RuntimeError, re.escape("Invalid device string: 'cuda:foo'")),
    ("rank:0/cpu2", RuntimeError, re.escape("Invalid device string: 'cpu2'")),
])
def test_device_placement_rejects(where, exc, pattern):
    with pytest.raises(exc, match=pattern):
        DevicePlacementSpec(where)


# ================================================================== §2 ChunkShardingSpec
# (test_chunked_sharding_spec)

@pytest.mark.parametrize("dim,placements,expected", [
    (0, [shardopt.device(0), shardopt.device(1)], ["cuda:0", "cuda:1"]),
    (0, [shardopt.device("cuda:0"), shardopt.device("cuda:1")], ["cuda:0", "cuda:1"]),
    (0, ["cuda:0", "cuda:1"], ["cuda:0", "cuda:1"]),
    (0, ["rank:0/cuda:0", "rank:1/cuda:1"], ["rank:0/cuda:0", "rank:1/cuda:1"]),
    (0, ["rank:0", "rank:1"], ["rank:0/cpu", "rank:1/cpu"]),
    (-1, ["cuda:0", "cuda:1"], ["cuda:0", "cuda:1"]),
])
def test_chunked_spec_accepts(dim, placements, expected):
    spec = ChunkShardingSpec(dim, placements)
    assert spec.dim == dim                       # stored as given, negative included
    assert all(isinstance(p, _remote_device) for p in spec.placements)
    assert [str(p) for p in spec.placements] == expected


def test_chunked_spec_rejects_named_dim():
    with pytest.raises(NotImplementedError,
                       match=r"^ChunkShardingSpec does not support named dimension yet!$"):
        ChunkShardingSpec("N", ["cuda:0", "cuda:1"])


@pytest.mark.parametrize("dim", [None, {}])
def test_chunked_spec_rejects_non_integer_dim(dim):
    with pytest.raises(ValueError, match=re.escape(f"Sharding dim needs to be an integer, found: {dim}")):
        ChunkShardingSpec(dim, ["cuda:0", "cuda:1"])


@pytest.mark.parametrize("bad,exc,pattern", [
    ("random:0", ValueError, PARSE_ERR),
    ("cuda:foo", ValueError, PARSE_ERR),
    ("rank:foo", ValueError, PARSE_ERR),
    ("rank:0/foo", RuntimeError, "Expected one of cpu, cuda, meta device type at start of device string: foo"),
    ("rank:0/random:0", RuntimeError, "Expected one of cpu, cuda, meta device type"),
    ("rank:0/cuda:foo", RuntimeError, re.escape("Invalid device string: 'cuda:foo'")),
])
def test_chunked_spec_rejects_bad_placement(bad, exc, pattern):
    # the bad entry sits behind a valid one: every placement is parsed at construction
    with pytest.raises(exc, match=pattern):
        ChunkShardingSpec(0, ["rank:0/cuda:0", bad])


# ================================================================== §2 chunk rule
# (test_get_split_size, test_get_chunked_dim_size, test_get_chunk_sharding_params)

@pytest.mark.parametrize("dim_size,chunks,split", [
    (11, 4, 3), (12, 4, 3), (13, 4, 4), (5, 4, 2), (11, 1, 11), (11, 11, 1),
])
def test_get_split_size(dim_size, chunks, split):
    assert get_split_size(dim_size, chunks) == split


@pytest.mark.parametrize("dim_size,split,idx,length", [
    (11, 3, 0, 3), (11, 3, 3, 2), (13, 4, 0, 4), (13, 4, 3, 1), (5, 2, 3, 0),
])
def test_get_chunked_dim_size(dim_size, split, idx, length):
    assert get_chunked_dim_size(dim_size, split, idx) == length


def _rank_spec(ranks, dim=0):
    return ChunkShardingSpec(dim, [f"rank:{r}/cpu" for r in ranks])


@pytest.mark.parametrize("ranks,expected", [
    # placements in rank order: 21 rows in chunks of 6, the last one short
    ([0, 1, 2, 3], {0: (0, 6), 1: (6, 6), 2: (12, 6), 3: (18, 3)}),
    # permuted placements: the start is the sum of the chunks placed before the rank's
    ([3, 0, 1, 2], {3: (0, 6), 0: (6, 6), 1: (12, 6), 2: (18, 3)}),
])
def test_get_chunk_sharding_params(ranks, expected):
    spec = _rank_spec(ranks)
    for rank, start_len in expected.items():
        assert get_chunk_sharding_params(21, 4, spec, rank) == start_len


@pytest.mark.parametrize("D,sizes,offsets", [
    (10, [3, 3, 3, 1], [0, 3, 6, 9]),
    (9, [3, 3, 3, 0], [0, 3, 6, 9]),
    (2, [1, 1, 0, 0], [0, 1, 2, 3]),       # offsets past the end are kept, unclamped
])
def test_chunk_rule_table(D, sizes, offsets):
    split = get_split_size(D, 4)
    assert [get_chunked_dim_size(D, split, i) for i in range(4)] == sizes
    meta = _rank_spec(range(4)).build_metadata(shardopt.Size([D]), TensorProperties())
    assert [m.shard_sizes for m in meta.shards_metadata] == [[s] for s in sizes]
    assert [m.shard_offsets for m in meta.shards_metadata] == [[o] for o in offsets]


# ================================================================== §2-3 EnumerableShardingSpec
# (test_enumerable_sharding_spec)

ROW_WISE = ([12, 5], [block([3 * r, 0], [3, 5], r) for r in range(4)])
GRID_2X2 = ([10, 10], [block([5 * i, 5 * j], [5, 5], 2 * i + j) for i in range(2) for j in range(2)])
UNEVEN = ([10, 10], [
    block([0, 0], [4, 10], 0),      # a full-width top band
    block([4, 0], [6, 3], 1),       # narrow bottom-left
    block([4, 3], [6, 7], 2),       # wide bottom-right
])


@pytest.mark.parametrize("dims,shards", [ROW_WISE, GRID_2X2, UNEVEN], ids=["rows", "grid", "uneven"])
def test_enumerable_spec_valid_layouts(dims, shards):
    check_tensor(shards, dims)
    spec = EnumerableShardingSpec(shards)
    assert isinstance(spec, ShardingSpec)
    props = TensorProperties(dtype=shardopt.float64)
    meta = spec.build_metadata(shardopt.Size(dims), props)
    assert isinstance(meta, ShardedTensorMetadata)
    assert meta.shards_metadata == shards and meta.size == shardopt.Size(dims)
    assert meta.tensor_properties == props


def test_enumerable_spec_shard_metadata_errors():
    with pytest.raises(ValueError, match=PARSE_ERR):
        ShardMetadata([0, 0], [5, 5], "cuda:foo")
    with pytest.raises(ValueError,
                       match="shard_offsets and shard_sizes should have the same number of elements"):
        ShardMetadata([0, 0], [5, 5, 5], "rank:0/cuda:0")
    with pytest.raises(ValueError, match=r"^shard_offsets should be >=0$"):
        ShardMetadata([5, -5], [5, 5], "rank:0/cuda:0")
    with pytest.raises(ValueError, match=r"^shard_sizes should be >= 0$"):
        ShardMetadata([0, 5], [-1, 5], "rank:0/cuda:0")


def test_enumerable_spec_errors():
    with pytest.raises(ValueError, match="Empty shard list provided"):
        EnumerableShardingSpec([])
    with pytest.raises(ValueError, match=r"^Found inconsistent ranks for shards: 2 and 3$"):
        EnumerableShardingSpec([block([0, 0], [4, 4], 0), block([0, 4, 0], [4, 4, 1], 1)])
    # two 6x6 blocks anchored 4 apart share a 2x2 corner
    with pytest.raises(ValueError, match=OVERLAP_RE):
        EnumerableShardingSpec([block([0, 0], [6, 6], 0), block([4, 4], [6, 6], 1)])


def test_enumerable_spec_check_tensor_errors():
    shards = GRID_2X2[1]
    with pytest.raises(ValueError, match=r"^Rank of tensor is 3, but shards rank is 2$"):
        check_tensor(shards, [10, 10, 10])
    with pytest.raises(ValueError, match="Shard offset 5 and length 5 exceeds tensor dim: 8"):
        check_tensor(shards, [10, 8])
    with pytest.raises(ValueError, match=(
            "Total volume of shards: 100 does not match tensor volume: 200, in other words all "
            "the individual shards do not cover the entire tensor")):
        check_tensor(shards, [10, 20])
    # the same checks run through build_metadata
    spec = EnumerableShardingSpec(shards)
    with pytest.raises(ValueError, match="does not match tensor volume"):
        spec.build_metadata(shardopt.Size([12, 10]), TensorProperties())
    with pytest.raises(ValueError, match=r"Rank of tensor is 1, but shards rank is 2"):
        spec.build_metadata(shardopt.Size([100]), TensorProperties())


def test_enumerable_spec_gap_is_a_volume_error():
    # three of the four grid cells: nothing overlaps, but one quarter is uncovered
    spec = EnumerableShardingSpec(GRID_2X2[1][:3])
    with pytest.raises(ValueError, match="Total volume of shards: 75 does not match tensor volume: 100"):
        spec.build_metadata(shardopt.Size([10, 10]), TensorProperties())


# ================================================================== §2 inference
# (test_infer_sharding_spec_from_shards_metadata)

@pytest.mark.parametrize("shards", [
    # 1-D 16 + 9: the chunk rule would give 13 + 12 for 25 elements
    [block([0], [16], 0), block([16], [9], 1)],
    # a 2x2 grid listed column by column: two dims carry offsets
    [block([0, 0], [4, 6], 0), block([4, 0], [4, 6], 1),
     block([0, 6], [4, 6], 2), block([4, 6], [4, 6], 3)],
    # row bands 2 / 6 / 2: ten rows over three chunks would be 4 / 4 / 2
    [block([0, 0], [2, 3], 0), block([2, 0], [6, 3], 1), block([8, 0], [2, 3], 2)],
], ids=["16+9", "column-major-grid", "uneven-rows"])
def test_infer_falls_back_to_enumerable(shards):
    spec = _infer_sharding_spec_from_shards_metadata(shards)
    assert isinstance(spec, EnumerableShardingSpec)
    assert spec.shards == shards


@pytest.mark.parametrize("dim", range(5))
@pytest.mark.parametrize("nranks", [3, 4])
def test_infer_recovers_chunk_spec(dim, nranks):
    shape = [9, 8, 10, 7, 11]
    ranks = list(range(nranks))
    random.Random(100 * dim + nranks).shuffle(ranks)
    spec = _rank_spec(ranks, dim)
    meta = spec.build_metadata(shardopt.Size(shape), TensorProperties())
    # hand the metadata over indexed by rank, not in placement order
    by_rank = sorted(meta.shards_metadata, key=lambda m: m.placement.rank())
    assert [m.placement.rank() for m in by_rank] == list(range(nranks))
    got = _infer_sharding_spec_from_shards_metadata(by_rank)
    assert isinstance(got, ChunkShardingSpec)
    assert got.dim == dim
    assert got.placements == spec.placements
    assert [p.rank() for p in got.placements] == ranks


# ================================================================== §3 overlap validator
# (test_check_overlapping)

def _expect_overlap(shards):
    with pytest.raises(ValueError, match=OVERLAP_RE):
        validate_non_overlapping_shards_metadata(shards)


@pytest.mark.parametrize("a,b", [
    (([0, 0], [4, 4]), ([0, 4], [4, 4])),            # side by side
    (([0, 0], [4, 4]), ([4, 0], [4, 4])),            # stacked
    (([0, 0], [4, 4]), ([4, 4], [4, 4])),            # corner to corner
    (([2, 0], [1, 9]), ([0, 0], [2, 9])),            # listed out of order
    (([0, 0, 0], [3, 3, 3]), ([0, 0, 3], [3, 3, 3])),
    (([0, 0, 0], [3, 3, 3]), ([3, 3, 3], [3, 3, 3])),
    (([1, 0, 5], [2, 8, 1]), ([1, 0, 6], [2, 8, 4])),
])
def test_check_overlapping_disjoint_pairs(a, b):
    validate_non_overlapping_shards_metadata([block(*a, 0), block(*b, 1)])
    validate_non_overlapping_shards_metadata([block(*b, 1), block(*a, 0)])


@pytest.mark.parametrize("a,b", [
    (([0, 0], [4, 4]), ([0, 3], [4, 4])),            # one column shared
    (([0, 0], [4, 4]), ([3, 3], [4, 4])),            # one corner cell shared
    (([0, 0], [8, 8]), ([2, 2], [2, 2])),            # nested
    (([0, 0], [4, 4]), ([0, 0], [4, 4])),            # identical
    (([0, 0, 0], [3, 3, 3]), ([2, 2, 2], [3, 3, 3])),
    (([0, 0, 0], [3, 3, 3]), ([0, 0, 2], [3, 3, 3])),
    (([1, 0, 5], [2, 8, 2]), ([2, 7, 6], [2, 8, 4])),
])
def test_check_overlapping_overlapping_pairs(a, b):
    _expect_overlap([block(*a, 0), block(*b, 1)])
    _expect_overlap([block(*b, 1), block(*a, 0)])


def test_check_overlapping_one_dim_runs():
    runs = [block([o], [s], r) for r, (o, s) in enumerate([(0, 3), (3, 1), (4, 5), (9, 2)])]
    for perm in itertools.permutations(runs):
        validate_non_overlapping_shards_metadata(list(perm))
    _expect_overlap(runs + [block([10], [1], 9)])     # the last cell of [9, 11) again
    _expect_overlap([block([0], [5], 0), block([2], [1], 1)])


def _grid(rows, cols, h, w):
    return [block([i * h, j * w], [h, w], i * cols + j) for i in range(rows) for j in range(cols)]


@pytest.mark.parametrize("rows,cols", [(2, 2), (3, 5), (8, 8)])
def test_check_overlapping_grid(rows, cols):
    cells = _grid(rows, cols, 3, 2)
    random.Random(rows * cols).shuffle(cells)
    validate_non_overlapping_shards_metadata(cells)
    check_tensor(cells, [3 * rows, 2 * cols])
    # widen one cell by a column: it now runs into its right-hand neighbour
    grown = list(cells)
    k = next(i for i, m in enumerate(grown) if m.shard_offsets[1] == 0)
    m = grown[k]
    grown[k] = block(m.shard_offsets, [m.shard_sizes[0], m.shard_sizes[1] + 1], 99)
    _expect_overlap(grown)
    # a cell shifted by half a cell down overlaps two others
    shifted = cells + [block([1, 0], [3, 2], 98)]
    _expect_overlap(shifted)


def test_check_overlapping_adjacent_cells_touch_but_do_not_overlap():
    # every neighbour of a centre cell in a 3x3 grid, including diagonal ones, shares only
    # an edge or a corner with it
    centre = block([2, 2], [2, 2], 0)
    for di, dj in itertools.product((-1, 0, 1), repeat=2):
        if (di, dj) == (0, 0):
            continue
        validate_non_overlapping_shards_metadata([centre, block([2 + 2 * di, 2 + 2 * dj], [2, 2], 1)])
        # moving the neighbour one step towards the centre creates an overlap
        _expect_overlap([centre, block([2 + di, 2 + dj], [2, 2], 1)])


def test_check_overlapping_three_dim_multi_shard():
    # a 2x2x2 partition of a 4x6x8 box
    cube = [block([2 * i, 3 * j, 4 * k], [2, 3, 4], 4 * i + 2 * j + k)
            for i, j, k in itertools.product(range(2), repeat=3)]
    random.Random(7).shuffle(cube)
    validate_non_overlapping_shards_metadata(cube)
    check_tensor(cube, [4, 6, 8])
    # slabs that overlap in the first two dims' ranges but are stacked along the third
    slabs = [block([0, 0, z], [4, 6, 1], z) for z in range(8)]
    random.Random(8).shuffle(slabs)
    validate_non_overlapping_shards_metadata(slabs)
    # a unit cell in the middle of the box hits exactly one shard of the partition
    _expect_overlap(cube + [block([1, 2, 3], [1, 1, 1], 50)])
    # boxes whose projections overlap pairwise in two dims, separated only in the third
    staircase = [block([i, i, 2 * i], [3, 3, 2], i) for i in range(5)]
    validate_non_overlapping_shards_metadata(staircase)
    _expect_overlap(staircase + [block([2, 2, 5], [1, 1, 2], 9)])


# ================================================================== a user-written spec
# (TestCustomShardingSpec.test_custom_sharding_spec)

class TileSpec(ShardingSpec):
    """Cuts a 2-D tensor into ``tile`` x ``tile`` blocks (edge blocks clipped) and hands
    them to ``placements`` round-robin, in row-major block order."""

    def __init__(self, tile, placements):
        self.tile = tile
        self.placements = [_remote_device(p) for p in placements]

    def build_metadata(self, tensor_sizes, tensor_properties):
        rows, cols = tensor_sizes
        origins = itertools.product(range(0, rows, self.tile), range(0, cols, self.tile))
        shards = [
            ShardMetadata([r, c], [min(self.tile, rows - r), min(self.tile, cols - c)],
                          self.placements[n % len(self.placements)])
            for n, (r, c) in enumerate(origins)
        ]
        return ShardedTensorMetadata(shards, tensor_sizes, tensor_properties)

    def shard(self, tensor, src_rank=0, process_group=None):
        raise NotImplementedError("TileSpec.shard")


@pytest.mark.parametrize("shape,tile,count", [((4, 4), 2, 4), ((5, 7), 2, 12), ((3, 3), 3, 1)])
def test_custom_sharding_spec(shape, tile, count):
    spec = TileSpec(tile, [f"rank:{r}/cpu" for r in range(4)])
    assert isinstance(spec, ShardingSpec)
    props = TensorProperties(dtype=shardopt.float64)
    meta = spec.build_metadata(shardopt.Size(shape), props)
    assert len(meta.shards_metadata) == count
    assert meta.size == shardopt.Size(shape) and meta.tensor_properties is props
    assert [m.placement.rank() for m in meta.shards_metadata] == [n % 4 for n in range(count)]
    validate_non_overlapping_shards_metadata(meta.shards_metadata)
    check_tensor(meta.shards_metadata, shape)
    # the library can describe the same layout, and sees it as a non-chunk layout when
    # both dims are cut
    EnumerableShardingSpec(meta.shards_metadata)
    if count > 1 and tile < min(shape):
        inferred = _infer_sharding_spec_from_shards_metadata(meta.shards_metadata)
        assert isinstance(inferred, EnumerableShardingSpec)


def test_custom_spec_must_implement_both_methods():
    class OnlyMetadata(ShardingSpec):
        def build_metadata(self, tensor_sizes, tensor_properties):
            return ShardedTensorMetadata()

    with pytest.raises(TypeError):
        OnlyMetadata()
