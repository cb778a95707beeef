"""zoff.torch.Lion and zoff.torch.Adagrad against references, and compact optimizer state.

- Adagrad matches torch.optim.Adagrad (lr_decay, weight_decay, eps, initial_accumulator_value)
  over a short training run: both fp32, differently ordered arithmetic, so within a tolerance.
- Lion matches a reference written here from Chen et al. 2023 (Algorithm 2, decoupled weight
  decay), applied with torch ops to a twin model.
- AdamW with state_format "q8" / "bf16" trains the same small model to within a few percent of
  the fp32-state loss; a bad state_format is a clear error.
"""

import pytest

torch = pytest.importorskip("torch")
import zoff  # noqa: E402
import zoff.torch  # noqa: E402

torch.set_num_threads(1)
STEPS = 40


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))


def make_data(seed=1, n=512):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    w = torch.randn(16, 4, generator=g)
    return x, torch.sin(x @ w / 4)


DATA = make_data()


def loss_of(model, t, size=64):
    x, y = DATA
    i = (t * size) % x.shape[0]
    return torch.nn.functional.mse_loss(model(x[i:i + size]), y[i:i + size])


def train(model, step_fn, steps=STEPS):
    losses = []
    for t in range(steps):
        for p in model.parameters():
            p.grad = None
        loss = loss_of(model, t)
        loss.backward()
        step_fn()
        losses.append(loss.item())
    return losses


def max_diff(a, b):
    return max((x.detach() - y.detach()).abs().max().item()
               for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("kw", [
    dict(lr=0.05),
    dict(lr=0.05, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-8),
])
def test_adagrad_matches_torch(kw):
    ref, zm = make_model(), make_model()
    topt = torch.optim.Adagrad(ref.parameters(), **kw)
    zopt = zoff.torch.Adagrad(zm.parameters(), **kw)
    lt = train(ref, topt.step)
    lz = train(zm, zopt.step)
    assert lz[-1] < 0.7 * lz[0], "loss did not fall"
    assert lz == pytest.approx(lt, rel=1e-4)
    assert max_diff(zm, ref) < 1e-5
    zopt.close()


def test_lion_matches_paper_reference():
    ref, zm = make_model(), make_model()
    lr, b1, b2, wd = 1e-3, 0.9, 0.99, 0.1
    moments = [torch.zeros_like(p) for p in ref.parameters()]

    def lion_step():  # Chen et al. 2023, Algorithm 2
        with torch.no_grad():
            for p, m in zip(ref.parameters(), moments):
                c = b1 * m + (1 - b1) * p.grad
                p.mul_(1 - lr * wd)
                p.add_(torch.sign(c), alpha=-lr)
                m.mul_(b2).add_(p.grad, alpha=1 - b2)

    zopt = zoff.torch.Lion(zm.parameters(), lr=lr, betas=(b1, b2), weight_decay=wd)
    lt = train(ref, lion_step)
    lz = train(zm, zopt.step)
    assert lz[-1] < lz[0], "loss did not fall"
    assert lz == pytest.approx(lt, rel=1e-3)
    # a sign flip where c is within rounding of 0 costs 2 lr on that element
    assert max_diff(zm, ref) < 3 * lr
    zopt.close()


@pytest.mark.parametrize("fmt,tol", [("bf16", 0.05), ("q8", 0.10)])
def test_compact_state_trains_like_fp32(fmt, tol):
    base, comp = make_model(), make_model()
    o32 = zoff.torch.AdamW(base.parameters(), lr=3e-3)
    oc = zoff.torch.AdamW(comp.parameters(), lr=3e-3, state_format=fmt)
    l32 = train(base, o32.step, steps=80)
    lc = train(comp, oc.step, steps=80)
    tail32, tailc = sum(l32[-10:]) / 10, sum(lc[-10:]) / 10
    assert tailc < 0.5 * lc[0]
    assert abs(tailc - tail32) <= tol * tail32, (tailc, tail32)
    o32.close()
    oc.close()


def test_bad_state_format():
    with pytest.raises(ValueError, match="state_format"):
        zoff.torch.AdamW(make_model().parameters(), state_format="q4")
    with pytest.raises(ValueError, match="lr_decay"):
        zoff.torch.Adagrad(make_model().parameters(), lr_decay=-1)
