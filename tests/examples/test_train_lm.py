"""examples/train_lm.py end to end: a character-level language model on 4 Gloo ranks with
its two large weights sharded, trained for a few steps; a run stopped midway and resumed
from its checkpoint must end exactly where an uninterrupted run ends (dropout and data are
functions of the step, the schedule and optimizer state are restored)."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "train_lm.py")
SMALL = ["--steps", "24", "--warmup", "6", "--batch", "32", "--hidden", "64", "--model-dim",
         "32", "--log-every", "4", "--ckpt-every", "6", "--lr", "1e-2", "--min-improvement", "0.2"]


def _run(extra, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    r = subprocess.run([sys.executable, SCRIPT] + SMALL + extra, env=env, capture_output=True,
                       text=True, timeout=timeout, cwd=ROOT)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    return out


def _losses(out):
    return dict(re.findall(r"step +(\d+)  loss (\d+\.\d+)", out))


def test_train_lm_learns_and_resumes_exactly(tmp_path):
    straight = _run(["--ckpt-dir", str(tmp_path / "a")])
    assert "4 ranks" in straight and "fc1 row-sharded" in straight
    assert "tokens/s" in straight
    assert re.search(r"held-out loss \d+\.\d+ \(uniform guess \d+\.\d+\): OK", straight), straight
    assert "sample: 'Tale 7. " in straight

    first = _run(["--ckpt-dir", str(tmp_path / "b"), "--stop-at", "12"])
    assert "held-out" not in first  # stopped before the end of the schedule
    assert open(tmp_path / "b" / "latest").read().strip() == "step-12"
    resumed = _run(["--ckpt-dir", str(tmp_path / "b"), "--resume"])
    assert "resumed from step 12" in resumed
    a, b = _losses(straight), _losses(first) | _losses(resumed)
    assert a == b and len(a) == 6, (a, b)
    held = re.compile(r"held-out loss (\d+\.\d+)")
    assert held.search(straight).group(1) == held.search(resumed).group(1)
    # only the last two checkpoints are kept, each complete (one file per rank)
    kept = sorted(n for n in os.listdir(tmp_path / "b") if n.startswith("step-"))
    assert kept == ["step-18", "step-24"]
    for k in kept:
        assert sorted(os.listdir(tmp_path / "b" / k)) == [f"rank{r}.pt" for r in range(4)]
