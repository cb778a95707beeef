#!/usr/bin/env python3
"""torchrun_dp.py — zoff.torch under torchrun: 2 data-parallel ranks on the sim device, the
collectives carried by torch.distributed (gloo) through zoff.dist, against the 1-rank run.

Run by CTest as `python3 torchrun_dp.py` (test python_torchrun_np2, label mpi): it exits 77 when
torch (and so torchrun) is missing, else launches itself with
`python3 -m torch.distributed.run --standalone --nproc_per_node 2` and returns its status.

In each rank: a small MLP (fp32) trains 30 steps with zoff.torch.AdamW (ZeRO stage 2, 2 ranks)
on its own batch of each step (rank r takes the r-th of the step's 2 batches); a copy of the
model trains with a single-rank zoff.torch.AdamW (zoff.ranks 1) on the gradient of the global
batch computed as the ranks' runtimes see it: the per-rank gradients added in rank order in
fp32 and divided by 2 (the mean of the two batch losses). The parameters must equal the
reference bit for bit after every step, and be identical on both ranks. Then a step where rank 1
has a non-finite gradient (fp32: no loss scaling) must change nothing on either rank; a zoff
checkpoint saved by the 2 ranks and loaded back gives the same next step as without the
restart; and state_dict with 2 ranks must raise (not built). With grad_hooks=True (gradients
pushed from autograd's hooks, buckets reduced during backward) and ZeRO stage 1, 10 more steps
must again equal a single-rank reference bit for bit.
"""

import os
import subprocess
import sys

SKIP = 77


def launcher():
    try:
        import torch  # noqa: F401
        import torch.distributed.run  # noqa: F401
    except ImportError as e:
        print(f"python_torchrun_np2: SKIPPED, torch is not installed ({e})")
        return SKIP
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.abspath(__file__)]
    print(" ".join(cmd), flush=True)
    return subprocess.run(cmd, timeout=900).returncode


def worker():
    import copy

    import torch
    import torch.distributed as dist

    import zoff.torch
    from zoff import ZoffError

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2, world

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 48), torch.nn.Tanh(),
                                torch.nn.Linear(48, 48), torch.nn.Tanh(), torch.nn.Linear(48, 4))
    ref = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(64 * 32, 16, generator=g)
    ys = torch.sin(xs[:, :4])
    cfg = {"zero_optimization": {"stage": 2, "reduce_bucket_size": 500},
           "zoff": {"grad_bucket_count": 3}}
    opt = zoff.torch.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01, config=cfg)
    rcfg = copy.deepcopy(cfg)
    rcfg["zoff"]["ranks"] = 1
    opt_ref = zoff.torch.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.01, config=rcfg)

    def batch(t, r):
        i = ((t * world + r) * 32) % xs.shape[0]
        return xs[i:i + 32], ys[i:i + 32]

    def grads(m, t, r):
        m.zero_grad()
        x, y = batch(t, r)
        torch.nn.functional.mse_loss(m(x), y).backward()
        return [p.grad.clone() for p in m.parameters()]

    def same(a, b):
        return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))

    bad = 0
    for t in range(30):
        x, y = batch(t, rank)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        per = [grads(ref, t, r) for r in range(world)]
        for k, p in enumerate(ref.parameters()):
            s = per[0][k].clone()
            for r in range(1, world):
                s = s + per[r][k]
            p.grad = s / world
        opt_ref.step()
        if not same(model, ref):
            d = max((p - q).abs().max().item() for p, q in zip(model.parameters(),
                                                               ref.parameters()))
            print(f"rank {rank}: step {t}: params differ from the 1-rank run (max {d:g})")
            bad += 1
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    others = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(others, flat)
    if not all(torch.equal(o, others[0]) for o in others):
        print(f"rank {rank}: the ranks' parameters differ")
        bad += 1

    # backward hooks (each gradient pushed as autograd produces it, so its bucket is reduced
    # during backward), ZeRO stage 1: 10 more steps against a fresh reference
    hm = copy.deepcopy(model)
    href = copy.deepcopy(model)
    hcfg = copy.deepcopy(cfg)
    hcfg["zero_optimization"]["stage"] = 1
    hopt = zoff.torch.AdamW(hm.parameters(), lr=1e-2, weight_decay=0.01, config=hcfg,
                            grad_hooks=True)
    hrcfg = copy.deepcopy(hcfg)
    hrcfg["zoff"]["ranks"] = 1
    hopt_ref = zoff.torch.AdamW(href.parameters(), lr=1e-2, weight_decay=0.01, config=hrcfg)
    for t in range(40, 50):
        x, y = batch(t, rank)
        torch.nn.functional.mse_loss(hm(x), y).backward()
        hopt.step()
        per = [grads(href, t, r) for r in range(world)]
        for k, p in enumerate(href.parameters()):
            s = per[0][k].clone()
            for r in range(1, world):
                s = s + per[r][k]
            p.grad = s / world
        hopt_ref.step()
        if not same(hm, href):
            print(f"rank {rank}: hooks, step {t}: params differ from the 1-rank run")
            bad += 1
    hopt.close()
    hopt_ref.close()

    # a non-finite gradient on rank 1 only: nothing changes on either rank
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    x, y = batch(30, rank)
    torch.nn.functional.mse_loss(model(x), y).backward()
    if rank == 1:
        next(model.parameters()).grad[0, 0] = float("inf")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.step()
    if not all(torch.equal(a, p) for a, p in zip(before, model.parameters())):
        print(f"rank {rank}: the step with an inf on rank 1 changed parameters")
        bad += 1
    # zoff checkpoints are collective: save with 2 ranks, train on, load, the same step again
    ck = [os.path.join(os.environ.get("ZOFF_TEST_TMP", "/tmp"), f"torchrun-ck-{os.getpid()}")]
    dist.broadcast_object_list(ck, src=0)
    opt.save(ck[0])
    saved = [p.detach().clone() for p in model.parameters()]

    def one_step():
        opt.zero_grad()
        xb, yb = batch(31, rank)
        torch.nn.functional.mse_loss(model(xb), yb).backward()
        opt.step()
        return [p.detach().clone() for p in model.parameters()]

    after1 = one_step()
    opt.load(ck[0])
    with torch.no_grad():
        for p, s in zip(model.parameters(), saved):
            p.copy_(s)
    after2 = one_step()
    if not all(torch.equal(a, b) for a, b in zip(after1, after2)):
        print(f"rank {rank}: the step after load differs from the step after save")
        bad += 1
    dist.barrier()
    if rank == 0:
        import shutil

        shutil.rmtree(ck[0], ignore_errors=True)
    try:
        opt.state_dict()
        print(f"rank {rank}: state_dict with 2 ranks did not raise")
        bad += 1
    except ZoffError as e:
        assert "not built" in str(e), e
    opt.close()
    opt_ref.close()
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {rank}: torchrun data parallel {'FAILED' if bad else 'OK'} "
          f"(30 steps bit-equal to the 1-rank run)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(worker() if "LOCAL_RANK" in os.environ else launcher())
