"""Two hosts as two network namespaces joined by a veth pair (192.0.2.1 and 192.0.2.2, a
documentation range that exists only inside them): `--nnodes 2 --master-addr` as torch
users launch it, Gloo's interface choice (MASTER_ADDR's route, GLOO_SOCKET_IFNAME), a node
whose link goes down, and --max-restarts across nodes.

Needs `ip` and the right to create namespaces (root, as in CI); skipped with the reason
otherwise.  The namespaces (and any process left in them) are removed even on failure.
Every launch is bounded by a timeout."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADDR = {0: "192.0.2.1", 1: "192.0.2.2"}
PORT = 29650


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, timeout=20, check=check)


class _Hosts:
    def __init__(self):
        tag = os.getpid() % 1000000
        self.ns = {0: f"so_a_{tag}", 1: f"so_b_{tag}"}
        self.dev = {0: f"soa{tag}", 1: f"sob{tag}"}

    def up(self):
        for n in (0, 1):
            _ip("netns", "add", self.ns[n])
        _ip("link", "add", self.dev[0], "type", "veth", "peer", "name", self.dev[1])
        for n in (0, 1):
            _ip("link", "set", self.dev[n], "netns", self.ns[n])
            _ip("-n", self.ns[n], "addr", "add", f"{ADDR[n]}/24", "dev", self.dev[n])
            _ip("-n", self.ns[n], "link", "set", self.dev[n], "up")
            _ip("-n", self.ns[n], "link", "set", "lo", "up")

    def down(self):
        for n in (0, 1):
            r = _ip("netns", "pids", self.ns[n], check=False)
            for pid in r.stdout.split():  # only processes this test started live in there
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _ip("netns", "del", self.ns[n], check=False)

    def launch(self, node, args, script, *script_args, env=None):
        e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for k in ("MASTER_ADDR", "MASTER_PORT", "GLOO_SOCKET_IFNAME", "GLOO_SOCKET_IFADDR"):
            e.pop(k, None)
        e.update(env or {})
        cmd = ["ip", "netns", "exec", self.ns[node], sys.executable, "-m", "shardopt.run",
               "--nnodes", "2", "--node-rank", str(node), "--master-addr", ADDR[0],
               "--master-port", str(PORT), *args, script, *map(str, script_args)]
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def hosts():
    if not sys.platform.startswith("linux") or shutil.which("ip") is None:
        pytest.skip("needs Linux and the `ip` tool to build two network namespaces")
    h = _Hosts()
    probe = _ip("netns", "add", h.ns[0], check=False)
    if probe.returncode != 0:
        pytest.skip("cannot create network namespaces here (needs root / CAP_SYS_ADMIN): "
                    + probe.stderr.decode().strip())
    _ip("netns", "del", h.ns[0], check=False)
    try:
        h.up()
        yield h
    finally:
        h.down()


def _finish(procs, timeout):
    """Wait for every launcher (bounded), kill leftovers; [(rc, stdout, stderr)]."""
    deadline = time.monotonic() + timeout
    out = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate(timeout=10)
        out.append((p.returncode, o.decode(), e.decode()))
    return out


def _script(tmp_path, body):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


ALL_REDUCE = """
    import os, sys, time
    from datetime import timedelta
    import shardopt as so
    import shardopt.distributed as dist
    dist.init_process_group("gloo", timeout=timedelta(seconds=15))
    rank, world = dist.get_rank(), dist.get_world_size()
    t = so.ones(8) * (rank + 1)
    dist.all_reduce(t)
    assert t.tolist() == [world * (world + 1) / 2] * 8, t
    os.write(1, f"ok {rank}\\n".encode())
    if len(sys.argv) > 1:  # then idle until stopped, while the test cuts the link
        open(os.path.join(sys.argv[1], f"ready{rank}"), "w").close()
        time.sleep(120)
    dist.destroy_process_group()
"""


def test_two_nodes_by_master_addr_and_ifname(hosts, tmp_path):
    script = _script(tmp_path, ALL_REDUCE)
    # node 0 picks the interface that routes to MASTER_ADDR; node 1 names its interface
    procs = [hosts.launch(0, ["--nproc-per-node", "2"], script),
             hosts.launch(1, ["--nproc-per-node", "2"], script,
                          env={"GLOO_SOCKET_IFNAME": hosts.dev[1]})]
    res = _finish(procs, 40)
    for rc, out, err in res:
        assert rc == 0, err[-3000:]
    assert sorted(res[0][1].split() + res[1][1].split()) == sorted(
        ["ok", "0", "ok", "1", "ok", "2", "ok", "3"])


def test_unknown_gloo_socket_ifname_is_a_clear_error(hosts, tmp_path):
    script = _script(tmp_path, ALL_REDUCE)
    env = {"GLOO_SOCKET_IFNAME": "nosuch0"}
    procs = [hosts.launch(n, ["--nproc-per-node", "1"], script, env=env) for n in (0, 1)]
    res = _finish(procs, 40)
    assert all(rc != 0 for rc, _, _ in res)
    assert "GLOO_SOCKET_IFNAME=nosuch0: no such network interface" in res[0][2], res[0][2][-3000:]


def test_lost_node_is_named_by_the_survivors_within_30s(hosts, tmp_path):
    script = _script(tmp_path, ALL_REDUCE)
    args = ["--nproc-per-node", "1", "--heartbeat-timeout", "3", "--grace-period", "1"]
    procs = [hosts.launch(n, args, script, tmp_path) for n in (0, 1)]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
                (tmp_path / f"ready{r}").exists() for r in (0, 1)):
            assert all(p.poll() is None for p in procs), _finish(procs, 5)
            time.sleep(0.05)
        assert all((tmp_path / f"ready{r}").exists() for r in (0, 1))
        t0 = time.monotonic()
        _ip("-n", hosts.ns[1], "link", "set", hosts.dev[1], "down")
        res = _finish(procs, 30)
        elapsed = time.monotonic() - t0
    finally:
        _ip("-n", hosts.ns[1], "link", "set", hosts.dev[1], "up", check=False)
    assert elapsed < 30, elapsed
    (rc0, _, err0), (rc1, _, err1) = res
    assert rc0 != 0 and "node 1 lost" in err0, err0[-3000:]
    assert rc1 != 0 and "node 0 lost" in err1, err1[-3000:]


RESUMING = """
    import os, sys
    from datetime import timedelta
    import shardopt as so
    import shardopt.distributed as dist
    ckpt = os.path.join(sys.argv[1], "step")
    attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    dist.init_process_group("gloo", timeout=timedelta(seconds=15))
    rank = dist.get_rank()
    start = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
    for step in range(start, 5):
        t = so.ones(2)
        dist.all_reduce(t)
        dist.barrier()
        if rank == 0:
            with open(ckpt + ".tmp", "w") as f:
                f.write(str(step + 1))
            os.replace(ckpt + ".tmp", ckpt)
        dist.barrier()
        if step == 1 and attempt == 0 and rank == 1:
            os._exit(7)
    os.write(1, f"done {rank} attempt={attempt} from={start}\\n".encode())
"""


def test_max_restarts_across_nodes_resumes_from_checkpoint(hosts, tmp_path):
    script = _script(tmp_path, RESUMING)
    args = ["--nproc-per-node", "1", "--max-restarts", "1", "--grace-period", "1"]
    procs = [hosts.launch(n, args, script, tmp_path) for n in (0, 1)]
    res = _finish(procs, 50)
    for rc, out, err in res:
        assert rc == 0, err[-3000:]
    assert res[0][1].strip() == "done 0 attempt=1 from=2", res[0]
    assert res[1][1].strip() == "done 1 attempt=1 from=2", res[1]
    assert "exit code 7" in res[1][2] and "restarting the group" in res[0][2]


KILLED = """
    import os, signal, time
    from datetime import timedelta
    import shardopt as so
    import shardopt.distributed as dist
    dist.init_process_group("gloo", timeout=timedelta(seconds=15))
    rank = dist.get_rank()
    dist.barrier()
    if rank == 1:
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)
    for _ in range(100000):
        dist.all_reduce(so.ones(256))
"""


def test_rank_killed_on_one_node_is_named_on_both(hosts, tmp_path):
    script = _script(tmp_path, KILLED)
    args = ["--nproc-per-node", "1", "--grace-period", "1"]
    res = _finish([hosts.launch(n, args, script) for n in (0, 1)], 40)
    (rc0, _, err0), (rc1, _, err1) = res
    assert rc1 == 128 + signal.SIGKILL, err1[-3000:]
    assert "rank 1 (local_rank 0" in err1 and "killed by signal SIGKILL" in err1, err1[-3000:]
    # node 0's rank only raised because of it: node 0 reports node 1's cause, not its own rank
    assert rc0 != 0
    summary0 = [l for l in err0.splitlines() if l.startswith("[shardopt.run]")]
    assert any("the group failed on another node" in l and "node 1: rank 1" in l
               and "SIGKILL" in l for l in summary0), err0[-3000:]
