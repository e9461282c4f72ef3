"""torch's module paths for the sharding layer and its test harness: a torch ``_shard``
program or test ports by replacing ``torch`` with ``shardopt`` on its import lines.  Each
path must name the same object as shardopt's short path (one implementation), and the
harness decorators must run a test body on every rank."""
import importlib
import logging
import unittest

import pytest

import shardopt
import shardopt.distributed as dist

# (torch-path module, names it must provide, short-path module they come from or None)
PATHS = [
    ("shardopt.distributed._shard", ["shard_parameter", "shard_module", "_shard_tensor",
                                     "load_with_process_group"], "shardopt"),
    ("shardopt.distributed._shard.api", ["shard_parameter", "_shard_tensor",
                                         "_collect_local_shard", "_reshard_output",
                                         "shard_module", "load_with_process_group"], None),
    ("shardopt.distributed._shard.sharded_tensor",
     ["ShardedTensor", "Shard", "ShardMetadata", "ShardedTensorMetadata", "TensorProperties",
      "empty", "zeros", "ones", "full", "rand", "randn", "init_from_local_shards",
      "custom_sharded_op_impl", "_sharded_op_impl", "state_dict_hook",
      "pre_load_state_dict_hook"], "shardopt.sharded_tensor"),
    ("shardopt.distributed._shard.sharded_tensor.api",
     ["ShardedTensor", "TensorProperties", "_create_tensor_from_params",
      "_sharded_tensor_map"], "shardopt.sharded_tensor.api"),
    ("shardopt.distributed._shard.sharded_tensor.metadata",
     ["ShardedTensorMetadata", "TensorProperties"], "shardopt.sharded_tensor.metadata"),
    ("shardopt.distributed._shard.sharded_tensor.shard", ["Shard"], "shardopt.sharded_tensor"),
    ("shardopt.distributed._shard.sharded_tensor.logger", ["_get_or_create_logger"], None),
    ("shardopt.distributed._shard.sharded_tensor.utils",
     ["_parse_and_validate_remote_device", "_flatten_tensor_size"], None),
    ("shardopt.distributed._shard.sharding_spec",
     ["ChunkShardingSpec", "EnumerableShardingSpec", "ShardMetadata", "ShardingSpec",
      "PlacementSpec", "DevicePlacementSpec", "custom_sharding_spec_op",
      "_infer_sharding_spec_from_shards_metadata"], "shardopt.sharding_spec"),
    ("shardopt.distributed._shard.sharding_spec.api",
     ["ShardingSpec", "EnumerableShardingSpec", "custom_sharding_spec_op"], None),
    ("shardopt.distributed._shard.sharding_spec.chunk_sharding_spec", ["ChunkShardingSpec"],
     "shardopt.sharding_spec"),
    ("shardopt.distributed._shard.sharding_spec._internals",
     ["get_split_size", "get_chunked_dim_size", "get_chunk_sharding_params",
      "validate_non_overlapping_shards_metadata", "check_tensor"],
     "shardopt.sharding_spec._internals"),
    ("shardopt.distributed._shard.sharded_optim",
     ["ShardedOptimizer", "named_params_with_sharded_tensor"], "shardopt.sharded_optim"),
    ("shardopt.distributed._shard.sharding_plan", ["ShardingPlan", "ShardingPlanner"],
     "shardopt.sharding_plan"),
    ("shardopt.distributed._shard.sharder", ["Sharder"], "shardopt.sharder"),
    ("shardopt.distributed._shard.metadata", ["ShardMetadata"], "shardopt.sharding_spec"),
    ("shardopt.distributed._shard.op_registry_utils", ["_decorator_func", "_register_op"],
     None),
    ("shardopt.distributed._shard.common_op_utils", ["_basic_validation"], None),
    ("shardopt.distributed.remote_device", ["_remote_device"], "shardopt.distributed"),
    ("shardopt.distributed.distributed_c10d",
     ["_get_default_group", "_get_group_size", "get_global_rank", "_get_global_rank",
      "get_group_rank"], None),
    ("shardopt.testing._internal.common_distributed",
     ["MultiProcessTestCase", "requires_nccl", "requires_gloo", "skip_if_lt_x_gpu",
      "TEST_SKIPS", "spawn_threads_and_init_comms", "requires_accelerator_dist_backend",
      "tp_transports"], None),
    ("shardopt.testing._internal.common_cuda",
     ["TEST_CUDA", "TEST_MULTIGPU", "CUDA_DEVICE", "TEST_CUDNN"], None),
    ("shardopt.testing._internal.common_utils",
     ["TestCase", "run_tests", "TEST_WITH_DEV_DBG_ASAN", "sandcastle_skip_if", "skipIfRocm",
      "TEST_CUDA"],
     None),
    ("shardopt.testing._internal.distributed._shard.sharded_tensor",
     ["ShardedTensorTestBase", "with_comms", "TEST_GPU_NUM"], "shardopt.testing"),
    ("shardopt.testing._internal.distributed._shard.sharded_tensor._test_ops_common",
     ["generate_chunk_sharding_specs_for_test", "generate_enumerable_sharding_specs_for_test",
      "generate_local_weight_sharding_params_for_test", "clone_module_parameter",
      "gen_binary_op_func"], None),
    ("shardopt.testing._internal.distributed._shard.sharded_tensor._test_st_common",
     ["MyShardedModel1", "MyShardedModel2", "_chunk_sharding_specs_list_for_test"], None),
    ("shardopt.testing._internal.distributed._shard.test_common", ["SimpleMegatronLM"], None),
]


@pytest.mark.parametrize("path, names, short", PATHS, ids=[p[0] for p in PATHS])
def test_torch_path_provides_names(path, names, short):
    mod = importlib.import_module(path)
    short_mod = importlib.import_module(short) if short else None
    for name in names:
        assert hasattr(mod, name), f"{path} lacks {name}"
        if short_mod is not None and hasattr(short_mod, name):
            assert getattr(mod, name) is getattr(short_mod, name), f"{path}.{name} is a copy"


def test_common_cuda_flags_follow_the_device_count():
    from shardopt.testing._internal import common_cuda
    n = shardopt.cuda.device_count() if shardopt.cuda.is_available() else 0
    assert common_cuda.TEST_CUDA is (n > 0)
    assert common_cuda.TEST_MULTIGPU is (n >= 2)
    assert common_cuda.CUDA_DEVICE == ("cuda:0" if n else None)


def test_submodules_are_attributes_of_their_packages():
    import shardopt.distributed._shard as shard
    assert shard.sharded_tensor.api.ShardedTensor is shardopt.sharded_tensor.ShardedTensor
    assert shard.sharding_spec._internals.get_split_size(10, 4) == 3
    assert dist._remote_device is shardopt._C._remote_device


def test_reshard_path_names_torch_functions():
    mod = importlib.import_module("shardopt.distributed._shard.sharded_tensor.reshard")
    assert set(mod.__all__) == {"reshuffle_local_shard", "reshard_local_shard"}
    try:
        impl = importlib.import_module("shardopt.sharded_tensor.reshard")
    except ModuleNotFoundError:
        with pytest.raises(NotImplementedError, match="reshard_local_shard"):
            mod.reshard_local_shard  # noqa: B018
    else:
        assert mod.reshard_local_shard is impl.reshard_local_shard
    with pytest.raises(AttributeError):
        mod.no_such_function  # noqa: B018


def test_logger_has_one_null_handler_however_often_asked():
    from shardopt.distributed._shard.sharded_tensor.logger import _get_or_create_logger
    first = _get_or_create_logger()
    second = _get_or_create_logger()
    assert first is second
    assert first.name == "sharding-spec-NullHandler"
    assert len(first.handlers) == 1 and isinstance(first.handlers[0], logging.NullHandler)
    assert first.level == logging.DEBUG and not first.propagate


def test_create_tensor_from_params_and_utils():
    from shardopt.distributed._shard.sharded_tensor.api import (
        TensorProperties,
        _create_tensor_from_params,
    )
    from shardopt.distributed._shard.sharded_tensor.utils import _flatten_tensor_size
    props = TensorProperties(dtype=shardopt.float64, requires_grad=True)
    t = _create_tensor_from_params(5, 10, local_device=shardopt.device("cpu"),
                                   tensor_properties=props)
    assert t.shape == shardopt.Size([5, 10]) and t.dtype == shardopt.float64
    assert t.requires_grad and t.device == shardopt.device("cpu")
    assert _flatten_tensor_size(([2, 3],)) == shardopt.Size([2, 3])
    assert _flatten_tensor_size((2, 3)) == shardopt.Size([2, 3])
    with pytest.raises(TypeError, match="sequence of ints"):
        _flatten_tensor_size((2, "3"))


def test_default_group_helper_before_init():
    from shardopt.distributed.distributed_c10d import _get_default_group
    if not dist.is_initialized():
        with pytest.raises(ValueError, match="Default process group has not been initialized"):
            _get_default_group()


def test_test_ops_common_helpers():
    from shardopt.testing._internal.distributed._shard.sharded_tensor._test_ops_common import (
        gen_binary_op_func,
        generate_chunk_sharding_specs_for_test,
        generate_local_weight_sharding_params_for_test,
    )
    specs = generate_chunk_sharding_specs_for_test(1)
    assert [[p.rank() for p in s.placements] for s in specs] == \
        [[0, 1, 2, 3], [2, 3, 0, 1], [3, 0, 1, 2]]
    w = shardopt.zeros(10, 7)
    # chunks of 3,3,3,1 rows in placement order 2,3,0,1: rank 0 holds rows 6..8
    assert generate_local_weight_sharding_params_for_test(w, 0, 4, specs[1], 0) == (6, 3)
    assert generate_local_weight_sharding_params_for_test(w, 0, 4, specs[1], 1) == (9, 1)
    a, b = shardopt.tensor([1.0, 2.0]), shardopt.tensor([3.0, 5.0])
    assert gen_binary_op_func("torch.mul")(a, b).tolist() == [3.0, 10.0]
    assert gen_binary_op_func("-")(a, b).tolist() == [-2.0, -3.0]
    c = a.clone()
    assert gen_binary_op_func("+", inplace=True)(c, b) is c and c.tolist() == [4.0, 7.0]


class SpawnedRanks(unittest.TestCase):
    from shardopt.testing._internal.common_distributed import spawn_threads_and_init_comms

    @spawn_threads_and_init_comms(world_size=4)
    def test_body_runs_on_every_rank(self):
        self.assertEqual(dist.get_world_size(), 4)
        self.assertEqual(dist.get_rank(), self.rank)
        t = shardopt.tensor([float(dist.get_rank() + 1)])
        dist.all_reduce(t)
        self.assertEqual(t.tolist(), [10.0])

    @spawn_threads_and_init_comms(world_size=3)
    def _fails_on_rank_one(self):
        if dist.get_rank() == 1:
            raise ValueError("rank one says no")

    def test_failure_of_one_rank_fails_the_test(self):
        with self.assertRaisesRegex(AssertionError, "rank 1 of 3 failed(.|\n)*rank one says no"):
            self._fails_on_rank_one()


class TorchPathGuards(unittest.TestCase):
    def test_gpu_guard_counts_cpu_ranks_without_cuda(self):
        from shardopt.testing._internal.common_distributed import skip_if_lt_x_gpu
        if shardopt.cuda.is_available():
            self.skipTest("the guard keeps torch's meaning when CUDA exists")

        class Probe:
            world_size = 2

            @skip_if_lt_x_gpu(2)
            def fits(self):
                return "ran"

            @skip_if_lt_x_gpu(4)
            def too_big(self):
                return "ran"
        self.assertEqual(Probe().fits(), "ran")
        with self.assertRaises(unittest.SkipTest):
            Probe().too_big()
