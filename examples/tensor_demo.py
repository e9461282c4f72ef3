"""examples/tensor_demo.py — a short tour of shardopt's tensor API (the main job until the
sharded training example exists).  Every result is checked against NumPy.

    ./run_demo.sh            # or: python examples/tensor_demo.py [--device cuda]
"""
import argparse

import numpy as np

import shardopt as torch  # the torch-like names: rand, zeros, arange, matmul, ...


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device on this machine")
    dev = args.device

    torch.manual_seed(0)
    a = torch.rand(4, 3, device=dev)
    b = torch.arange(12, dtype=torch.float32, device=dev).reshape(3, 4)
    z = torch.zeros(4, 4, device=dev)
    print("a = rand(4, 3) on", a.device)
    print(a)
    print("b = arange(12).reshape(3, 4)")
    print(b)

    c = torch.matmul(a, b) + z          # (4, 3) @ (3, 4) -> (4, 4)
    d = (a * 2.0 + 1.0).sum(dim=0)      # broadcasting with Python scalars, then a reduction
    e = c @ c.t()
    total = e.sum().item()
    print("c = a @ b + zeros:", tuple(c.shape))
    print(c)
    print("d = (a * 2 + 1).sum(dim=0):", d.cpu().numpy())
    print("sum((a @ b) @ (a @ b).T) =", total)

    # The same computation in NumPy (float64) from the tensors' own values.
    an, bn = a.cpu().numpy().astype(np.float64), b.cpu().numpy().astype(np.float64)
    cn = an @ bn
    ok = (np.allclose(c.cpu().numpy(), cn, rtol=1e-5, atol=1e-5)
          and np.allclose(d.cpu().numpy(), (an * 2 + 1).sum(axis=0), rtol=1e-5)
          and np.isclose(total, (cn @ cn.T).sum(), rtol=1e-4))
    print("matches NumPy:", ok)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
