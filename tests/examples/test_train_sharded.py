"""examples/train_sharded.py end to end through the launcher, with few steps: 4 Gloo ranks,
row- and column-sharded weights, a checkpoint written and reloaded midway, and the final
parameters checked against an unsharded single-process run (the script's exit status)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "train_sharded.py")


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _run(args, timeout=240):
    return subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_train_sharded_through_the_launcher(tmp_path):
    r = _run([sys.executable, "-m", "shardopt.run", "--standalone", "--nproc-per-node", "4",
              SCRIPT, "--steps", "20", "--log-every", "5", "--ckpt-dir", str(tmp_path)])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "4 ranks, backend gloo" in out
    assert "step    0  loss" in out and "step   19  loss" in out
    assert "checkpoint at step 10" in out
    assert "parameters vs unsharded single-process run: OK" in out
    # one checkpoint directory (metadata + a data file per rank), no temp directory left
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["data-0.bin", "data-1.bin", "data-2.bin",
                                                     "data-3.bin", "metadata.json"]


def test_train_sharded_resumes_a_4_rank_run_on_2_ranks(tmp_path):
    # the README's recipe: stop a 4-rank run after its checkpoint, resume it on 2 ranks; the
    # final parameters must still match the unsharded run of all the steps
    launch = [sys.executable, "-m", "shardopt.run", "--standalone", "--nproc-per-node"]
    r = _run(launch + ["4", SCRIPT, "--steps", "12", "--stop-after", "6",
              "--hidden", "30", "--ckpt-dir", str(tmp_path)])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "checkpoint at step 6" in out and "stopping" in out
    r = _run(launch + ["2", SCRIPT, "--steps", "12", "--hidden", "30",
              "--resume", str(tmp_path / "ckpt"), "--log-every", "1"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "2 ranks" in out and "resumed from" in out and "at step 6 on 2 ranks" in out
    assert "step    5  loss" not in out and "step    6  loss" in out
    assert "parameters vs unsharded single-process run: OK" in out


def test_train_sharded_launches_itself_with_small_uneven_shards():
    # run without a launcher: the script launches itself through shardopt.run; hidden=7 over
    # 4 ranks gives shards of 2, 2, 2 and 1 hidden units.  (A rank without hidden units,
    # e.g. hidden=3, is covered by tests/sharded_tensor/test_sharded_linear.py;
    # ShardedOptimizer.step() on zero-size shards by
    # tests/sharded_optim/test_sharded_optim_dist.py.)
    r = _run([sys.executable, SCRIPT, "--steps", "6", "--hidden", "7", "--log-every", "1"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "hidden 7" in out and "step    5  loss" in out
    assert "parameters vs unsharded single-process run: OK" in out
