"""MultiProcessTestCase: spawning, failures, skips, timeouts, and running under the launcher.

The cases live in helpers/harness_cases.py and run in a sub-pytest, because several of them
must fail (that is what is being tested)."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES = os.path.join(HERE, "helpers", "harness_cases.py")


def _env(tmp_path, **extra):
    env = dict(os.environ, PYTHONPATH=ROOT, HARNESS_OUT=str(tmp_path))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("harness")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider",
                        CASES], env=_env(tmp), capture_output=True, timeout=300, cwd=tmp)
    return r.stdout.decode() + r.stderr.decode(), tmp, time.monotonic() - t0


def _result(text, name):
    m = re.search(rf"^(PASSED|FAILED|SKIPPED)\S* .*{name}", text, re.M)
    if m is None:  # skipped lines look like: SKIPPED [1] file.py: reason
        return None
    return m.group(1)


def test_spawned_outcomes(spawned):
    text, tmp, took = spawned
    for name, want in (("test_all_ranks_run", "PASSED"), ("test_tcp_store_on_master_port", "PASSED"),
                       ("test_two", "PASSED"), ("test_rank_raises", "FAILED"),
                       ("test_rank_exits", "FAILED"), ("test_hang_times_out", "FAILED"),
                       ("test_mixed_skip", "FAILED")):
        assert _result(text, name) == want, (name, text)
    assert "4 failed, 3 passed, 2 skipped" in text, text
    assert took < 120


def test_ranks_are_separate_processes(spawned):
    text, tmp, _ = spawned
    info = [json.loads((tmp / f"ranks_{r}.json").read_text()) for r in range(4)]
    assert [i["rank"] for i in info] == [0, 1, 2, 3]
    assert len({i["pid"] for i in info}) == 4
    assert not any(i["launched"] for i in info)


def test_failure_reports_failing_rank_traceback(spawned):
    text, _, _ = spawned
    assert re.search(r"Process 2 exited with error code 10 and exception:", text)
    assert "ValueError: boom on rank two" in text
    # the first error leads even when a lower rank failed after it; the others follow
    assert "then rank 0: RuntimeError: follow-up on rank zero" in text
    assert "Process 1 exited with error code 3" in text
    assert "Timing out after 2 seconds" in text


def test_skips_become_skips(spawned):
    text, _, _ = spawned
    assert "no thanks" in text
    assert "Need at least 8 CUDA devices" in text or "Need at least 64 CUDA devices" in text


def test_under_launcher(tmp_path):
    # One launch runs both classes: Ranks (world size 4) runs as the launched ranks, and
    # TwoRanks, which wants another world size, skips instead of running with the wrong one.
    r = subprocess.run([sys.executable, "-m", "shardopt.run", "--standalone",
                        "--nproc-per-node", "4", "-m", "pytest", "-q", "-rs",
                        "-p", "no:cacheprovider", f"{CASES}::Ranks", f"{CASES}::TwoRanks"],
                       env=_env(tmp_path), capture_output=True, timeout=120, cwd=tmp_path)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 0, out
    info = [json.loads((tmp_path / f"ranks_{r}.json").read_text()) for r in range(4)]
    assert all(i["launched"] for i in info)
    assert [i["rank"] for i in info] == [0, 1, 2, 3]
    assert "needs world_size 2, launched with 4" in out, out


def test_run_tests_as_script(tmp_path):
    r = subprocess.run([sys.executable, CASES, "TwoRanks"], env=_env(tmp_path),
                       capture_output=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert "OK" in r.stderr.decode()
