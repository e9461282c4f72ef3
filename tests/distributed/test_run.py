"""The launcher (python -m shardopt.run): environment, failure handling, signals, output."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("OMP_NUM_THREADS", None)
    env.update(extra)
    return env


def _script(tmp_path, body, name="script.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _launch(args, env=None, timeout=60, **kw):
    # --standalone (a free port) unless the test is about ports or nodes: several test
    # runs share this machine, and the default MASTER_PORT 29500 may be taken.
    if not {"--master-port", "--rdzv-endpoint", "--nnodes", "--standalone"} & set(args):
        args = ["--standalone", *args]
    return subprocess.run([sys.executable, "-m", "shardopt.run", *args], env=env or _env(),
                          capture_output=True, timeout=timeout, **kw)


ENV_DUMP = """
    import json, os, sys
    keys = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
            "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS"]
    with open(os.path.join(sys.argv[1], "rank" + os.environ["RANK"]), "w") as f:
        json.dump({k: os.environ.get(k) for k in keys} | {"argv": sys.argv[2:]}, f)
"""


def test_environment_and_args(tmp_path):
    script = _script(tmp_path, ENV_DUMP)
    r = _launch(["--nproc-per-node", "3", "--master-port", "29611", script, str(tmp_path),
                 "--foo", "x"])
    assert r.returncode == 0, r.stderr
    for rank in range(3):
        d = json.loads((tmp_path / f"rank{rank}").read_text())
        assert d == {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "3",
                     "LOCAL_WORLD_SIZE": "3", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                     "MASTER_PORT": "29611", "OMP_NUM_THREADS": "1", "argv": ["--foo", "x"]}


def test_multinode_ranks_and_rdzv_endpoint_and_omp_kept(tmp_path):
    script = _script(tmp_path, ENV_DUMP)
    # both nodes on this host: node 1's launcher joins node 0's through its store
    common = ["--nnodes", "2", "--nproc_per_node", "2", "--rdzv-endpoint", "localhost:29612"]
    node0 = subprocess.Popen([sys.executable, "-m", "shardopt.run", *common, "--node_rank",
                              "0", script, str(tmp_path)], env=_env(OMP_NUM_THREADS="4"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        r = _launch([*common, "--node_rank", "1", script, str(tmp_path)],
                    env=_env(OMP_NUM_THREADS="4"))
        assert node0.wait(timeout=60) == 0, node0.stderr.read()
    finally:
        if node0.poll() is None:
            node0.kill()
            node0.wait(timeout=10)
        node0.stdout.close()
        node0.stderr.close()
    assert r.returncode == 0, r.stderr
    d2, d3 = (json.loads((tmp_path / f"rank{i}").read_text()) for i in (2, 3))
    assert (d2["LOCAL_RANK"], d3["LOCAL_RANK"]) == ("0", "1")
    assert d2["WORLD_SIZE"] == "4" and d2["GROUP_RANK"] == "1"
    assert d2["MASTER_ADDR"] == "localhost" and d2["MASTER_PORT"] == "29612"
    assert d2["OMP_NUM_THREADS"] == "4"


def test_standalone_rendezvous_through_store(tmp_path):
    script = _script(tmp_path, """
        import os
        from datetime import timedelta
        import shardopt.distributed as dist
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        # The launcher serves the store (torchrun's agent store); ranks are clients.
        assert os.environ["TORCHELASTIC_USE_AGENT_STORE"] == "True"
        s = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          False, timeout=timedelta(seconds=20), wait_for_workers=False)
        s.add("sum", rank + 1)
        s.set(f"done{rank}", "1")
        s.wait([f"done{r}" for r in range(world)])
        assert s.add("sum", 0) == world * (world + 1) // 2
        # One write(2) of under PIPE_BUF bytes: atomic on the shared pipe.  (print() may
        # write "ok", " ", rank and the newline separately when PYTHONUNBUFFERED is set, and then
        # the ranks' words interleave.)
        os.write(1, f"ok {rank}\\n".encode())
    """)
    r = _launch(["--standalone", "--nproc-per-node", "3", script])
    assert r.returncode == 0, r.stderr
    # Unprefixed ranks share the launcher's stdout; lines arrive in any order.
    assert sorted(r.stdout.decode().splitlines()) == ["ok 0", "ok 1", "ok 2"]


def test_failing_rank_stops_others_and_is_named(tmp_path):
    script = _script(tmp_path, """
        import os, sys, time
        if os.environ["RANK"] == "1":
            time.sleep(0.3)
            sys.exit(3)
        time.sleep(60)
    """)
    t0 = time.monotonic()
    r = _launch(["--nproc-per-node", "3", script])
    assert time.monotonic() - t0 < 20
    assert r.returncode == 3
    err = r.stderr.decode()
    assert "rank 1" in err and "exit code 3" in err and "SIGTERM" in err


def test_rank_killed_by_signal_is_reported(tmp_path):
    script = _script(tmp_path, """
        import os, signal, time
        if os.environ["RANK"] == "0":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)
    """)
    r = _launch(["--nproc-per-node", "2", script])
    assert r.returncode == 128 + signal.SIGKILL
    assert "rank 0" in r.stderr.decode() and "signal SIGKILL" in r.stderr.decode()


def test_rank_ignoring_sigterm_is_killed_after_grace(tmp_path):
    script = _script(tmp_path, """
        import os, signal, sys, time
        if os.environ["RANK"] == "1":
            time.sleep(0.5)
            sys.exit(2)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
    """)
    t0 = time.monotonic()
    r = _launch(["--nproc-per-node", "2", "--grace-period", "0.5", script])
    assert r.returncode == 2 and time.monotonic() - t0 < 15
    assert "SIGKILL" in r.stderr.decode()


def test_sigint_to_launcher_stops_all_ranks(tmp_path):
    script = _script(tmp_path, """
        import os, sys, time
        open(os.path.join(sys.argv[1], "pid" + os.environ["RANK"]), "w").write(str(os.getpid()))
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-m", "shardopt.run", "--standalone",
                          "--nproc-per-node", "2", script, str(tmp_path)], env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(
            (tmp_path / f"pid{i}").exists() for i in range(2)):
        time.sleep(0.05)
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 128 + signal.SIGINT, err
    assert b"SIGINT" in err
    for i in range(2):
        pid = int((tmp_path / f"pid{i}").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_module_and_no_python(tmp_path):
    # one write(2) per rank: ranks share the launcher's stdout, so separate writes of one
    # print() could interleave between ranks
    (tmp_path / "mymod.py").write_text(
        "import os; os.write(1, ('mod ' + os.environ['RANK'] + '\\n').encode())\n")
    r = _launch(["--nproc-per-node", "2", "-m", "mymod"],
                env=_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}"))
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.decode().split()) == ["0", "1", "mod", "mod"]
    r = _launch(["--nproc-per-node", "2", "--no-python", "sh", "-c", "echo nopy $RANK"])
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.decode().splitlines()) == ["nopy 0", "nopy 1"]


def test_prefix_output_and_tee_log_dir(tmp_path):
    script = _script(tmp_path, """
        import os, sys
        print("out", os.environ["RANK"])
        print("err", os.environ["RANK"], file=sys.stderr)
    """)
    logs = tmp_path / "logs"
    r = _launch(["--nproc-per-node", "2", "--prefix-output", "--tee", "3", "--log-dir",
                 str(logs), script])
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.decode().splitlines()) == ["[rank0]:out 0", "[rank1]:out 1"]
    assert "[rank1]:err 1" in r.stderr.decode()
    assert (logs / "attempt_0" / "1" / "stdout.log").read_text() == "out 1\n"
    assert (logs / "attempt_0" / "0" / "stderr.log").read_text() == "err 0\n"
    r = _launch(["--nproc-per-node", "1", "--redirects", "1", "--log-dir", str(logs), script])
    assert r.returncode == 0 and r.stdout == b""


def test_bad_arguments():
    for args, msg in ((["--nproc-per-node", "0", "x.py"], "nproc-per-node"),
                      (["--nproc-per-node", "two", "x.py"], "nproc-per-node"),
                      (["--nnodes", "2", "--node-rank", "5", "x.py"], "node-rank"),
                      (["--no-python", "-m", "x"], "together")):
        r = _launch(args)
        assert r.returncode != 0 and msg in r.stderr.decode()


def test_script_runs_under_real_torchrun(tmp_path):
    """Scripts written for shardopt also run under PyTorch's torchrun: its agent store
    speaks torch's protocol, so env:// must not talk to it (distributed_c10d._env_store)."""
    pytest.importorskip("torch.distributed.run")
    script = _script(tmp_path, """
        import os
        import shardopt as so
        import shardopt.distributed as dist
        for _ in range(2):  # init twice in one process, as test suites do
            dist.init_process_group("gloo")
            t = so.ones(3) * (dist.get_rank() + 1)
            dist.all_reduce(t)
            assert t.tolist() == [3.0, 3.0, 3.0], t
            dist.destroy_process_group()
        os.write(1, b"ok done\\n")  # one write: ranks share stdout
    """)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc-per-node", "2", script], env=_env(), capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert r.stdout.decode().count("ok done") == 2


# ---- which rank failed first -------------------------------------------------------------

COLLECTIVE_LOOP = """
    import os, signal, sys, time
    from datetime import timedelta
    import shardopt as so
    import shardopt.distributed as dist
    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo", timeout=timedelta(seconds=float(sys.argv[1])))
    dist.barrier()
    {fault}
    for _ in range(100000):
        dist.all_reduce(so.ones(1024))
"""


def _summary(stderr):
    lines = [l for l in stderr.decode().splitlines() if l.startswith("[shardopt.run]")]
    assert lines, stderr.decode()[-3000:]
    return "\n".join(lines)


@pytest.mark.parametrize("victim", [1, 2])
def test_rank_killed_mid_collective_is_named_not_the_ranks_that_raised(tmp_path, victim):
    # The survivors raise DistBackendError within milliseconds of the kill; a slow monitor
    # interval makes the launcher see every exit at once, so only the exit times (and
    # causes) can tell who went first.
    fault = (f"if rank == {victim}:\n        time.sleep(0.3)\n"
             f"        os.kill(os.getpid(), signal.SIGKILL)")
    script = _script(tmp_path, COLLECTIVE_LOOP.format(fault=fault))
    r = _launch(["--nproc-per-node", "3", "--monitor-interval", "1", script, "20"],
                timeout=120)
    summary = _summary(r.stderr)
    assert r.returncode == 128 + signal.SIGKILL, summary
    first = summary.splitlines()[-1]
    assert first.startswith(f"[shardopt.run] rank {victim} (local_rank {victim}"), summary
    assert "killed by signal SIGKILL; stopped after it:" in first, summary
    for other in {0, 1, 2} - {victim}:
        assert f"rank {other}: " in first.split("stopped after it:")[1], summary


def test_hung_rank_is_named_not_the_ranks_that_timed_out_on_it(tmp_path):
    fault = "if rank == 1:\n        time.sleep(120)"
    script = _script(tmp_path, COLLECTIVE_LOOP.format(fault=fault))
    t0 = time.monotonic()
    r = _launch(["--nproc-per-node", "3", "--grace-period", "1", script, "3"], timeout=120)
    assert time.monotonic() - t0 < 60
    summary = _summary(r.stderr)
    assert r.returncode != 0
    first = summary.splitlines()[-1]
    assert first.startswith("[shardopt.run] rank 1 (local_rank 1"), summary
    assert "hung" in first, summary
    after = first.split("stopped after it:")[1]
    assert "rank 0: exit code 1" in after and "rank 2: exit code 1" in after, summary


# ---- --max-restarts ----------------------------------------------------------------------

RESUMING = """
    import os, sys
    from datetime import timedelta
    import shardopt as so
    import shardopt.distributed as dist
    ckpt = os.path.join(sys.argv[1], "step")
    rank, attempt = int(os.environ["RANK"]), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    assert os.environ["TORCHELASTIC_MAX_RESTARTS"] == sys.argv[2]
    dist.init_process_group("gloo", timeout=timedelta(seconds=20))
    start = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
    for step in range(start, 6):
        t = so.ones(4)
        dist.all_reduce(t)
        assert t.tolist() == [2.0] * 4
        dist.barrier()
        if rank == 0:
            with open(ckpt + ".tmp", "w") as f:
                f.write(str(step + 1))
            os.replace(ckpt + ".tmp", ckpt)
        dist.barrier()
        if step == 2 and attempt == 0 and rank == 1:
            os._exit(5)
    os.write(1, f"done rank={rank} attempt={attempt} from={start}\\n".encode())
"""


def test_max_restarts_restarts_the_group_which_resumes(tmp_path):
    script = _script(tmp_path, RESUMING)
    r = _launch(["--nproc-per-node", "2", "--max-restarts", "2", script, str(tmp_path), "2"],
                timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert sorted(r.stdout.decode().splitlines()) == [
        "done rank=0 attempt=1 from=3", "done rank=1 attempt=1 from=3"]
    err = r.stderr.decode()
    assert "rank 1 (local_rank 1" in err and "exit code 5" in err
    assert "restarting the group: attempt 1 of 2" in err


def test_without_restarts_the_failure_ends_the_run(tmp_path):
    script = _script(tmp_path, RESUMING)
    r = _launch(["--nproc-per-node", "2", script, str(tmp_path), "0"], timeout=120)
    assert r.returncode == 5, r.stderr.decode()[-3000:]
    assert "restarting" not in r.stderr.decode()
