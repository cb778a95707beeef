#!/usr/bin/env python3
"""train_mlp.py — a small PyTorch MLP trained on CPU with zoff.torch.AdamW.

The only zoff-specific line is the optimizer: torch.optim.AdamW(...) became
zoff.torch.AdamW(..., offload=...). The fp32 master weights and the Adam moments live in zoff
(pinned host memory, or NVMe swap files with --offload nvme); the model's parameters stay
ordinary torch tensors (fp32 or bf16). Prints the loss every few steps and zoff's statistics.

  python3 python/examples/train_mlp.py [--steps 200] [--offload cpu|nvme] [--nvme-path DIR]
                                       [--dtype fp32|bf16] [--hooks]
"""

import argparse
import math
import os
import sys
import tempfile
import time

import torch

try:  # the installed package (pip install ./python) first
    import zoff.torch
except ImportError:  # not installed: the source tree's package (finds build/ or ZOFF_LIBRARY)
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import zoff.torch  # noqa: E402


def make_data(n=4096, dim=32, seed=0):
    """A regression task: y = sin(x W1) W2 + noise (x: n x dim, y: n x 8)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    w1 = torch.randn(dim, 64, generator=g) / math.sqrt(dim)
    w2 = torch.randn(64, 8, generator=g) / 8.0
    y = torch.sin(x @ w1) @ w2 + 0.01 * torch.randn(n, 8, generator=g)
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--offload", choices=["cpu", "nvme"], default="cpu")
    ap.add_argument("--nvme-path", default=None, help="swap directory (default: a temp dir)")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--hooks", action="store_true",
                    help="hand each gradient to zoff as soon as backward finished it")
    args = ap.parse_args()

    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    x, y = make_data()
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 256), torch.nn.GELU(),
        torch.nn.Linear(256, 256), torch.nn.GELU(),
        torch.nn.Linear(256, 8)).to(dtype)
    nparams = sum(p.numel() for p in model.parameters())

    with tempfile.TemporaryDirectory(prefix="zoff-example-") as tmp:
        nvme_path = args.nvme_path or tmp
        optimizer = zoff.torch.AdamW(
            model.parameters(), lr=args.lr, weight_decay=0.01, offload=args.offload,
            nvme_path=nvme_path if args.offload == "nvme" else None, grad_hooks=args.hooks)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
        print(f"model: {nparams} parameters ({args.dtype}), optimizer state on "
              f"{args.offload}, libzoff {zoff.library_version()} from {zoff.library_path()}")

        t0 = time.perf_counter()
        loss = None
        for step in range(1, args.steps + 1):
            i = ((step - 1) * args.batch) % x.shape[0]
            xb, yb = x[i:i + args.batch].to(dtype), y[i:i + args.batch]
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb).float(), yb)
            loss.backward()
            optimizer.step()
            sched.step()
            if step == 1 or step % 20 == 0 or step == args.steps:
                r = optimizer.last_step_result
                print(f"step {step:4d}  loss {loss.item():.5f}  lr {sched.get_last_lr()[0]:.2e}"
                      f"  grad_norm {r.grad_norm:.3f}  zoff step {r.step_ms:.2f} ms")
        elapsed = time.perf_counter() - t0
        st = optimizer.stats()
        print(f"final loss {loss.item():.5f} after {args.steps} steps in {elapsed:.2f} s")
        print(f"zoff: device {st['device_name']}, Adam kernel {st['cpu_isa']}, "
              f"host {st['pinned_bytes'] + st['pageable_bytes']} B, swap {st['nvme_bytes']} B, "
              f"grads down {st['total_d2h_bytes']} B, params up {st['total_h2d_bytes']} B")
        optimizer.close()


if __name__ == "__main__":
    main()
