"""bench_train.py — full training steps (zero_grad, forward, MSE loss, backward, Adam step)
against torch on the same shapes, data and initial weights, one thread per process.

Workloads:
  big     single process: MLP 1024 -> 4096 -> 1024 (GELU), batch 64
  tiny    single process: MLP 128 -> 128 -> 128 (GELU), batch 8
  sharded examples/train_sharded.py's model and shapes (d_in 128, hidden 1022 row/column-
          sharded Megatron-style, d_mid 128, d_out 4, batch 64) on 2 and 4 Gloo ranks started
          with shardopt.run; shardopt uses shard_parameter + ShardedOptimizer(Adam) exactly as
          the example does; torch holds the same local shards as plain Parameters with the
          same two all-reduce autograd Functions over torch's Gloo, and steps them with
          torch.optim.Adam (what torch's ShardedOptimizer calls on local shards).
torch variants: Adam() default (on CPU: the one-tensor-at-a-time loop), foreach=True and
fused=True; "torch fastest" = the faster of foreach and fused in the same run.

Every repetition runs `steps` steps of each implementation back to back (interleaved, so
machine noise hits all of them alike); ms/step = the repetition's time / steps (sharded: the
slowest rank's).  Reported: median over repetitions and the spread (min-max).  Ratios are
torch's median / shardopt's median (> 1: shardopt faster).

Usage: python benchmarks/bench_train.py [--workloads big,tiny,sharded2,sharded4]
       [--repeat 7] [--out benchmarks/results/bench_train.json]
"""
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # one thread per process, for both libraries

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import shardopt as so  # noqa: E402

IMPLS = ["shardopt", "torch-default", "torch-foreach", "torch-fused"]
SINGLE = {  # name: (dims, batch, steps per repetition)
    "big": ((1024, 4096, 1024), 64, 4),
    "tiny": ((128, 128, 128), 8, 200),
}
LR = 1e-3


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def _torch_adam(torch, params, impl):
    kw = {"torch-default": {}, "torch-foreach": {"foreach": True},
          "torch-fused": {"fused": True}}[impl]
    return torch.optim.Adam(params, lr=LR, **kw)


def _weights(dims, seed=0):
    rng = np.random.default_rng(seed)
    ws = []
    for a, b in zip(dims[:-1], dims[1:]):
        bound = 1 / np.sqrt(a)
        ws.append((rng.uniform(-bound, bound, (b, a)).astype(np.float32),
                   rng.uniform(-bound, bound, b).astype(np.float32)))
    return ws


def _data(dims, batch, n=4, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, dims[0])).astype(np.float32),
             rng.standard_normal((batch, dims[-1])).astype(np.float32)) for _ in range(n)]


def _single_step_fn(impl, dims, batch, torch):
    """A no-argument function doing one training step of `impl`, and its warm-up done."""
    ws, data = _weights(dims), _data(dims, batch)
    if impl == "shardopt":
        nn, F = so.nn, so.nn.functional
        layers = []
        for w, b in ws:
            lin = nn.Linear(w.shape[1], w.shape[0])
            with so.no_grad():
                lin.weight.copy_(so.from_numpy(w))
                lin.bias.copy_(so.from_numpy(b))
            layers.append(lin)
        model = nn.Sequential(layers[0], nn.GELU(), *sum(([l, nn.GELU()] for l in layers[1:-1]), []),
                              layers[-1]) if len(layers) > 1 else layers[0]
        opt = so.optim.Adam(model.parameters(), lr=LR)
        batches = [(so.from_numpy(x), so.from_numpy(y)) for x, y in data]
        mse = F.mse_loss
    else:
        nn, F = torch.nn, torch.nn.functional
        layers = []
        for w, b in ws:
            lin = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
        model = nn.Sequential(layers[0], nn.GELU(), *sum(([l, nn.GELU()] for l in layers[1:-1]), []),
                              layers[-1])
        opt = _torch_adam(torch, list(model.parameters()), impl)
        batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]
        mse = F.mse_loss
    state = {"i": 0}

    def step():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        opt.zero_grad()
        loss = mse(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step()
    return step


def _summary(times):
    t = sorted(times)
    return {"median_ms": statistics.median(t) * 1e3, "min_ms": t[0] * 1e3,
            "max_ms": t[-1] * 1e3, "reps": len(t)}


def bench_single(name, repeat, torch):
    dims, batch, steps = SINGLE[name]
    impls = IMPLS if torch is not None else ["shardopt"]
    fns = {impl: _single_step_fn(impl, dims, batch, torch) for impl in impls}
    times = {impl: [] for impl in impls}
    for _ in range(repeat):
        for impl in impls:
            t0 = time.perf_counter()
            for _ in range(steps):
                fns[impl]()
            times[impl].append((time.perf_counter() - t0) / steps)
    return {"workload": name, "dims": list(dims), "batch": batch, "steps_per_rep": steps,
            "ranks": 1, "impls": {impl: _summary(ts) for impl, ts in times.items()}}


# ---------------------------------------------------------------------------- sharded


def _load_example():
    spec = importlib.util.spec_from_file_location(
        "train_sharded", os.path.join(ROOT, "examples", "train_sharded.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sharded_worker(args):
    """One rank of the sharded benchmark (run under shardopt.run)."""
    import shardopt.distributed as dist
    torch = _torch()
    ex = _load_example()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo")
    eargs = ex.parse_args([]) if hasattr(ex, "parse_args") else None
    d_in, hidden, d_mid, d_out, batch = 128, 1022, 128, 4, 64
    if eargs is not None:
        d_in, hidden, d_mid, d_out, batch = (eargs.d_in, eargs.hidden, eargs.d_mid, eargs.d_out,
                                             eargs.batch)
    steps, repeat = args.steps, args.repeat
    placements = [f"rank:{r}/cpu" for r in range(world)]

    # shardopt: the example's model, sharding, forward and optimizer
    so.manual_seed(0)
    model = ex.MLP(d_in, hidden, d_mid, d_out)
    full = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    ex.shard_model(model, placements)
    opt = ex.make_optimizer(model, argparse.Namespace(lr=LR))
    rng = np.random.default_rng(1)
    data = [(rng.standard_normal((batch, d_in)).astype(np.float32),
             rng.standard_normal((batch, d_out)).astype(np.float32)) for _ in range(4)]
    so_batches = [(so.from_numpy(x), so.from_numpy(y)) for x, y in data]
    shard1 = model.fc1.weight.local_shards()[0]  # this rank's rows of fc1
    n_r, o_r = shard1.tensor.shape[0], shard1.metadata.shard_offsets[0]

    def so_step(i):
        x, y = so_batches[i % len(so_batches)]
        opt.zero_grad()
        loss = so.nn.functional.mse_loss(model(x), y)  # the example's forward (sharded Linear ops)
        loss.backward()
        opt.step()

    impls = ["shardopt"]
    fns = {"shardopt": so_step}
    if torch is not None:
        import torch.distributed as tdist
        tdist.init_process_group("gloo", init_method=f"file://{args.torch_store}", rank=rank,
                                 world_size=world)

        class AllReduceSum(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                out = x.clone()
                tdist.all_reduce(out)
                return out

            @staticmethod
            def backward(ctx, g):
                return g

        class CopyToShards(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.clone()

            @staticmethod
            def backward(ctx, g):
                g = g.contiguous().clone()
                tdist.all_reduce(g)
                return g

        t_batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]

        def make_torch(impl):
            P = torch.nn.Parameter
            p = {
                "w1": P(torch.from_numpy(full["fc1.weight"][o_r:o_r + n_r].copy())),
                "b1": P(torch.from_numpy(full["fc1.bias"].copy())),
                "w2": P(torch.from_numpy(full["fc2.weight"][:, o_r:o_r + n_r].copy())),
                "b2": P(torch.from_numpy(full["fc2.bias"].copy())),
                "wh": P(torch.from_numpy(full["head.weight"].copy())),
                "bh": P(torch.from_numpy(full["head.bias"].copy())),
            }
            topt = _torch_adam(torch, list(p.values()), impl)
            F = torch.nn.functional

            def fwd(x):
                b1 = CopyToShards.apply(p["b1"]).narrow(0, o_r, n_r)
                h = F.gelu(F.linear(x, p["w1"], b1))
                z = AllReduceSum.apply(F.linear(h, p["w2"])) + p["b2"]
                return F.linear(F.gelu(z), p["wh"], p["bh"])

            def step(i):
                x, y = t_batches[i % len(t_batches)]
                topt.zero_grad()
                loss = F.mse_loss(fwd(x), y)
                loss.backward()
                topt.step()

            return step

        for impl in IMPLS[1:]:
            impls.append(impl)
            fns[impl] = make_torch(impl)

    for impl in impls:  # warm-up
        for i in range(3):
            fns[impl](i)
    times = {impl: [] for impl in impls}
    slow = so.zeros(1, dtype=so.float64)
    for _ in range(repeat):
        for impl in impls:
            dist.barrier()
            t0 = time.perf_counter()
            for i in range(steps):
                fns[impl](i)
            dt = (time.perf_counter() - t0) / steps
            slow.fill_(dt)
            dist.all_reduce(slow, op=dist.ReduceOp.MAX)  # the slowest rank's time
            times[impl].append(float(slow.item()))
    if rank == 0:
        res = {"workload": f"sharded{world}", "ranks": world, "batch": batch,
               "dims": [d_in, hidden, d_mid, d_out], "steps_per_rep": steps,
               "local_hidden_rank0": n_r,
               "impls": {impl: _summary(ts) for impl, ts in times.items()}}
        with open(args.worker_out, "w") as f:
            json.dump(res, f)
    if torch is not None:
        tdist.destroy_process_group()
    dist.destroy_process_group()


def bench_sharded(world, repeat, steps=40):
    with tempfile.TemporaryDirectory(prefix="bench_train-") as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, "-m", "shardopt.run", "--standalone", "--nproc-per-node",
               str(world), os.path.abspath(__file__), "--_worker", "--worker-out", out,
               "--torch-store", os.path.join(tmp, "torch_store"), "--repeat", str(repeat),
               "--steps", str(steps)]
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        subprocess.run(cmd, check=True, env=env, timeout=900)
        with open(out) as f:
            return json.load(f)


# ---------------------------------------------------------------------------- report


def ratios(row):
    im = row["impls"]
    if "torch-fused" not in im:
        return {}
    s = im["shardopt"]["median_ms"]
    fastest = min(("torch-fused", "torch-foreach"), key=lambda k: im[k]["median_ms"])
    return {"torch_fastest": fastest,
            "vs_fastest": im[fastest]["median_ms"] / s,
            "vs_default": im["torch-default"]["median_ms"] / s,
            "vs_fused": im["torch-fused"]["median_ms"] / s}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="big,tiny,sharded2,sharded4")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--steps", type=int, default=40, help="steps per repetition (sharded)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_train.json"))
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("--torch-store", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        sharded_worker(args)
        return 0

    torch = _torch()
    rows = []
    for w in args.workloads.split(","):
        w = w.strip()
        if w in SINGLE:
            rows.append(bench_single(w, args.repeat, torch))
        elif w.startswith("sharded"):
            rows.append(bench_sharded(int(w[len("sharded"):]), args.repeat, args.steps))
        else:
            raise SystemExit(f"unknown workload {w!r}")
        r = rows[-1]
        r.update(ratios(r))
        print(f"\n{r['workload']} ({r['ranks']} rank(s), batch {r['batch']}, dims {r['dims']}, "
              f"{r['steps_per_rep']} steps x {args.repeat} reps)")
        for impl, s in r["impls"].items():
            print(f"  {impl:<14} median {s['median_ms']:8.3f} ms/step  "
                  f"(min {s['min_ms']:.3f}, max {s['max_ms']:.3f})")
        if "vs_fastest" in r:
            print(f"  shardopt speed-up: {r['vs_fastest']:.2f}x vs torch fastest "
                  f"({r['torch_fastest']}), {r['vs_fused']:.2f}x vs fused, "
                  f"{r['vs_default']:.2f}x vs default")
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "repeat": args.repeat,
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "python": sys.version.split()[0], "numpy": np.__version__,
                       "torch": getattr(torch, "__version__", None)},
           "threads_per_process": 1, "rows": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
