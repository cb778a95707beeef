"""Tests of zoff.torch.stream: a small transformer whose blocks' weights are streamed through
zoff units (skipped when torch is not installed).

The same model trained with and without streaming (both with zoff.torch.AdamW and the blocks'
nn.Linear computing through zoff.torch.stream_linear) gives bit-identical losses at every step
and bit-identical fp32 master weights, in fp32 and bf16; the stream's fetches are prefetched;
outside a fetch a streamed parameter holds no data; evaluation without grad works between
steps; streaming after the first step is refused. A third run with torch's own nn.Linear (not
patched) follows within a tolerance: stream_linear changes only the order of the weight
gradient's sums.
"""

import copy

import pytest

torch = pytest.importorskip("torch")
import zoff  # noqa: E402
import zoff.torch  # noqa: E402
from zoff import _lib  # noqa: E402

torch.set_num_threads(1)
STEPS = 12
V, C, T, NB = 40, 32, 16, 4


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(C)
        self.qkv = torch.nn.Linear(C, 3 * C)
        self.proj = torch.nn.Linear(C, C)
        self.ln2 = torch.nn.LayerNorm(C)
        self.fc = torch.nn.Linear(C, 4 * C)
        self.out = torch.nn.Linear(4 * C, C)

    def forward(self, x):
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        att = (q @ k.transpose(-1, -2)) / C ** 0.5
        mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        x = x + self.proj(att @ v)
        return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x))))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(V, C)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(NB))
        self.lnf = torch.nn.LayerNorm(C)
        self.head = torch.nn.Linear(C, V)

    def forward(self, idx):
        x = self.emb(idx)
        for b in self.blocks:
            x = b(x)
        return self.head(self.lnf(x))


def make(dtype, patch=True):
    torch.manual_seed(3)
    m = Tiny().to(dtype)
    if patch:
        zoff.torch.stream_linear(m.blocks)
    return m


def batches(n):
    g = torch.Generator().manual_seed(11)
    return [torch.randint(0, V, (2, T + 1), generator=g) for _ in range(n)]


def train(model, opt, data, evaluate=False):
    losses = []
    for i, xy in enumerate(data):
        x, y = xy[:, :-1], xy[:, 1:]
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if evaluate and i % 4 == 3:
            with torch.no_grad():
                model(x)
    return losses


def masters(opt):
    rt = opt.runtime
    return [rt.get_master(s.pid) for s in opt._slots if s is not None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_stream_bit_identical(dtype):
    data = batches(STEPS)
    ref = make(dtype)
    opt_ref = zoff.torch.AdamW(ref.parameters(), lr=3e-3)
    l_ref = train(ref, opt_ref, data, evaluate=True)

    m = make(dtype)
    opt = zoff.torch.AdamW(m.parameters(), lr=3e-3)
    h = zoff.torch.stream(m, opt, units=m.blocks)
    assert len(h.units) == NB
    l_str = train(m, opt, data, evaluate=True)
    assert l_str == l_ref
    for a, b in zip(masters(opt_ref), masters(opt)):
        assert a.tobytes() == b.tobytes()
    # outside a fetch a streamed parameter holds nothing; resident ones keep their values
    assert m.blocks[0].fc.weight.numel() == 0
    assert m.emb.weight.numel() == V * C
    st = opt.stats()
    assert st["fetches"] > 0 and st["prefetches"] > 0
    assert st["fetch_hits"] > 0
    assert st["nslots"] == 3
    weights = sum(p.numel() * p.element_size() for p in ref.blocks.parameters())
    assert st["nslots"] * st["slot_bytes"] < weights
    # the streamed parameters' gradients left through zoff's buckets (zoff_grad_push)
    assert st["bucket_bytes"] > 0 and st["bucket_flushes"] > 0
    h.remove()
    opt.close()
    opt_ref.close()


def test_stream_close_to_torch_linear():
    data = batches(STEPS)
    plain = make(torch.float32, patch=False)
    opt_p = zoff.torch.AdamW(plain.parameters(), lr=3e-3)
    l_plain = train(plain, opt_p, data)
    m = make(torch.float32, patch=False)
    opt = zoff.torch.AdamW(m.parameters(), lr=3e-3)
    zoff.torch.stream(m, opt, units=m.blocks)
    l_str = train(m, opt, data)
    for a, b in zip(l_plain, l_str):
        assert abs(a - b) <= 1e-4 * abs(a)
    opt.close()
    opt_p.close()


def test_stream_errors():
    m = make(torch.float32)
    opt = zoff.torch.AdamW(m.parameters(), lr=1e-3)
    train(m, opt, batches(1))
    with pytest.raises(zoff.ZoffError) as e:
        zoff.torch.stream(m, opt, units=m.blocks)
    assert e.value.status == _lib.ZOFF_ESTATE
    opt.close()
    m = make(torch.float32)
    opt = zoff.torch.AdamW(m.parameters(), lr=1e-3)
    with pytest.raises(ValueError):
        zoff.torch.stream(m, opt, units=[m.blocks[0], m.blocks[0]])
    opt.close()
    with pytest.raises(TypeError):
        zoff.torch.stream(m, torch.optim.AdamW(m.parameters()), units=m.blocks)
