"""The device type the torch-path test helpers place shards on: cuda when every one of the
4 test ranks has a GPU, else cpu (tests ported to a CPU-only machine use cpu placements)."""
from shardopt.testing._multiprocess import _cuda_device_count

TEST_RANKS = 4


def device_type() -> str:
    return "cuda" if _cuda_device_count() >= TEST_RANKS else "cpu"


def placement(rank: int) -> str:
    """'rank:<r>/cuda:<r>' or 'rank:<r>/cpu'."""
    dev = device_type()
    return f"rank:{rank}/cuda:{rank}" if dev == "cuda" else f"rank:{rank}/cpu"
