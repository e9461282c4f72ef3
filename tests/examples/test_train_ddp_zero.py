"""examples/train_ddp_zero.py end to end with few steps: 4 Gloo ranks (the script launches
itself through shardopt.run), ZeRO-2 AdamW, a consolidated checkpoint reloaded midway, and
the final parameters checked against a single-process run (the script's exit status)."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "train_ddp_zero.py")


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def test_train_ddp_zero_launches_itself_on_4_ranks():
    r = subprocess.run([sys.executable, SCRIPT, "--steps", "8", "--log-every", "2"],
                       env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "4 ranks, backend gloo" in out
    assert "step    0  loss" in out and "step    7  loss" in out
    assert "checkpoint at step 4" in out
    # equal state per rank (ZeRO-2's flat partitions), about a quarter of AdamW's
    m = re.search(r"optimizer state bytes per rank: \[([0-9, ]+)\]", out)
    assert m, out
    per_rank = [int(v) for v in m.group(1).split(",")]
    assert len(set(per_rank)) == 1, per_rank
    assert "parameters vs single-process run on the concatenated batch: OK" in out
