"""torch.testing._internal's paths for shardopt's test harness, so that torch's distributed
tests port by changing their import lines.  The implementation is shardopt.testing."""
