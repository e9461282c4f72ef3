"""What the build says about itself: the CUDA kernels and NCCL are separate switches, and a
build without NCCL carries the reason (for the nccl backend's error)."""
import subprocess
import sys

from shardopt import _C


def test_nccl_missing_reason_matches_the_build():
    assert isinstance(_C._nccl_missing, str)
    if _C._nccl_compiled:
        assert _C._nccl_missing == ""
    else:
        # e.g. "nccl.h not found; set NCCL_HOME or pip install nvidia-nccl-cu13",
        # "nvcc not found; set CUDA_HOME" or "SHARDOPT_NCCL=0"
        assert _C._nccl_missing
        assert any(w in _C._nccl_missing for w in ("NCCL", "nccl", "nvcc", "CUDA"))


def test_nccl_requires_cuda():
    assert not (_C._nccl_compiled and not _C._cuda_compiled)


def test_import_works_without_a_cuda_driver():
    # The CUDA build links cudart statically and touches the driver only on first use, so a
    # fresh interpreter imports shardopt and answers is_available() without one.
    code = ("import shardopt, sys; "
            "print(int(shardopt.cuda.is_available()), shardopt.cuda.device_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    avail, count = out.stdout.split()
    assert (avail == "1") == (int(count) > 0)
