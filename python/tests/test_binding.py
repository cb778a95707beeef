"""The numpy-only test of the zoff binding (no torch needed; CTest label `quick`).

Checks: the library loads and its struct layouts match the ctypes mirrors (compiled against
include/zoff.h when a C compiler is present); Runtime create/add_group/add_param/finalize/step
against a float64 numpy AdamW/Adam reference over several groups, dtypes and an lr change; the
cpu and nvme tiers give bit-identical results; errors raise ZoffError with zoff's message; plan;
stats; get/set state and the step counter; save/load continues bit-identically.
"""

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import zoff
from zoff import _dtypes, _lib
from conftest import adam_reference, assert_close

REPO = Path(__file__).resolve().parents[2]

# fp32 Adam in zoff vs the float64 reference: a few fp32 roundings per step.
ATOL, RTOL = 2e-6, 2e-5


def base_config(tier="cpu", nvme_path=None, **zoff_keys):
    off = {"device": tier}
    if nvme_path is not None:
        off["nvme_path"] = str(nvme_path)
    z = {"device": "sim"}
    z.update(zoff_keys)
    return {"zero_optimization": {"offload_optimizer": off}, "zoff": z}


# ---- library and layout -------------------------------------------------------------------------
def test_library_loads_and_reports_version():
    assert zoff.library_version() == zoff.__version__
    assert os.path.isfile(zoff.library_path())
    assert _lib.strerror(_lib.ZOFF_ECONFIG) == "invalid configuration"
    assert _lib.status_name(_lib.ZOFF_ECORRUPT) == "ZOFF_ECORRUPT"


_LAYOUT_C = r"""
#include <stddef.h>
#include <stdio.h>
#include "zoff.h"
#define F(T, f) printf(#T " " #f " %zu\n", offsetof(T, f));
#define S(T) printf(#T " sizeof %zu\n", sizeof(T));
int main(void) {
%s
    return 0;
}
"""

_MIRRORS = {
    "zoff_group_config": _lib.GroupConfig,
    "zoff_step_args": _lib.StepArgs,
    "zoff_step_result": _lib.StepResultC,
    "zoff_link_stats": _lib.LinkStats,
    "zoff_stats": _lib.StatsC,
    "zoff_plan_report": _lib.PlanReportC,
}


def test_struct_mirrors_match_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    header = REPO / "include" / "zoff.h"
    if cc is None or not header.is_file():
        pytest.skip("no C compiler or no include/zoff.h to compare the ctypes mirrors with")
    lines = []
    for cname, cls in _MIRRORS.items():
        lines.append(f"    S({cname})")
        lines += [f"    F({cname}, {f})" for f, _ in cls._fields_]
    src = tmp_path / "layout.c"
    src.write_text(_LAYOUT_C.replace("%s", "\n".join(lines)))
    exe = tmp_path / "layout"
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # sanitizer builds
    subprocess.check_call([cc, "-I", str(REPO / "include"), str(src), "-o", str(exe)], env=env)
    out = subprocess.check_output([str(exe)], text=True, env=env).split("\n")
    seen = 0
    for line in filter(None, out):
        cname, field, value = line.split()
        cls = _MIRRORS[cname]
        mine = ctypes.sizeof(cls) if field == "sizeof" else getattr(cls, field).offset
        assert mine == int(value), f"{cname}.{field}: ctypes {mine}, C {value}"
        seen += 1
    assert seen == sum(len(c._fields_) + 1 for c in _MIRRORS.values())


def test_group_defaults_from_library():
    d = zoff.group_defaults()
    assert d["lr"] == pytest.approx(1e-3)
    assert d["betas"] == pytest.approx((0.9, 0.999))
    assert d["adamw"] is True and d["bias_correction"] is True


def test_bf16_conversion_round_to_nearest_even():
    x = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, -2.5, np.inf, -np.inf, 0.0], np.float32)
    bits = _dtypes.f32_to_bf16_bits(x)
    back = _dtypes.bf16_bits_to_f32(bits)
    # 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even mantissa (1.0) wins; 1 + 3*2^-8 rounds up.
    np.testing.assert_array_equal(back, [1.0, 1.0, 1.0 + 2**-6, -2.5, np.inf, -np.inf, 0.0])
    assert np.isnan(_dtypes.bf16_bits_to_f32(_dtypes.f32_to_bf16_bits(np.float32([np.nan]))))


# ---- the update against the reference -------------------------------------------------------------
def _run_reference(inits, groups, grads, lr_at=None):
    """Float64 reference of the run: inits {name: array}, groups {name: hyperparameter dict},
    grads: list over steps of {name: grad}. lr_at(step, name) optionally overrides lr."""
    state = {n: (inits[n].astype(np.float64), np.zeros_like(inits[n], np.float64),
                 np.zeros_like(inits[n], np.float64)) for n in inits}
    for t, gs in enumerate(grads, start=1):
        for n, g in gs.items():
            hp = dict(groups[n])
            if lr_at is not None:
                hp["lr"] = lr_at(t, n)
            p, m, v = state[n]
            state[n] = adam_reference(p, m, v, g, t, **hp)
    return state


def _make_problem(seed=1, steps=25):
    rng = np.random.default_rng(seed)
    sizes = {"w0": 1000, "b0": 17, "w1": 4099}
    inits = {n: rng.standard_normal(k).astype(np.float32) for n, k in sizes.items()}
    grads = [{n: rng.standard_normal(k).astype(np.float32) * 0.1 for n, k in sizes.items()}
             for _ in range(steps)]
    return inits, grads


def _register(rt, inits, dtype="f32"):
    g_adamw = 0  # group 0: AdamW, lr 1e-2, wd 0.1
    rt.set_group(g_adamw, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99), eps=1e-8, adamw=True)
    g_adam = rt.add_group(lr=5e-3, weight_decay=0.05, adamw=False)  # Adam with L2
    g_nodecay = rt.add_group(lr=2e-2, weight_decay=0.0)
    gids = {"w0": g_adamw, "b0": g_nodecay, "w1": g_adam}
    pids = {n: rt.add_param(n, inits[n], dtype=dtype, group=gids[n]) for n in inits}
    hps = {
        "w0": dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1, adamw=True),
        "b0": dict(lr=2e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, adamw=True),
        "w1": dict(lr=5e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05, adamw=False),
    }
    return pids, hps, gids


def _train(rt, pids, grads, on_step=None):
    for t, gs in enumerate(grads, start=1):
        if on_step is not None:
            on_step(t)
        for n, g in gs.items():
            rt.set_grad(pids[n], g)
            rt.grad_ready(pids[n])
        res = rt.step()
        rt.params_ready()
        assert res.step == t and not res.skipped and not res.overflow
    return res


def test_adam_matches_numpy_reference_groups_and_lr_change():
    inits, grads = _make_problem()
    with zoff.Runtime(base_config()) as rt:
        pids, hps, gids = _register(rt, inits)
        rt.finalize()
        assert rt.num_params == 3

        def lr_at(t, name):
            return hps[name]["lr"] * (0.5 if t > 10 else 1.0)

        def on_step(t):
            if t == 11:  # an lr schedule: halve every group's lr from step 11 on
                for n, gid in gids.items():
                    rt.set_group(gid, lr=hps[n]["lr"] * 0.5)

        res = _train(rt, pids, grads, on_step)
        assert res.grad_norm > 0 and res.clip_coef == 1.0
        ref = _run_reference(inits, hps, grads, lr_at)
        for n, pid in pids.items():
            p, m, v = ref[n]
            ea, eas = rt.get_state(pid)
            assert_close(rt.get_master(pid), p, ATOL, RTOL, f"{n} master")
            assert_close(ea, m, ATOL, RTOL, f"{n} exp_avg")
            assert_close(eas, v, ATOL * 1e-2, RTOL, f"{n} exp_avg_sq")
            # f32 device params are the master weights themselves.
            np.testing.assert_array_equal(rt.get_param(pid), rt.get_master(pid))
        assert rt.step_count == len(grads)
        assert rt.get_group(gids["w1"])["adamw"] is False
        assert rt.get_group(gids["w0"])["lr"] == pytest.approx(5e-3)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_16bit_params_are_rounded_master(dtype):
    inits, grads = _make_problem(seed=2, steps=8)
    key = "fp16" if dtype == "f16" else "bf16"
    cfg = base_config()
    cfg[key] = {"enabled": True, **({"loss_scale": 1.0} if key == "fp16" else {})}
    with zoff.Runtime(cfg) as rt:
        pids, hps, _ = _register(rt, inits, dtype=dtype)
        rt.finalize()
        _train(rt, pids, grads)
        code = _dtypes.parse(dtype)
        for n, pid in pids.items():
            master = rt.get_master(pid)
            expect = _dtypes.decode(_dtypes.encode(master, code), code)
            np.testing.assert_array_equal(rt.get_param(pid), expect, err_msg=n)
        # The master follows the reference fed with the 16-bit gradients zoff received.
        q = [{n: _dtypes.decode(_dtypes.encode(g, code), code) for n, g in gs.items()}
             for gs in grads]
        ref = _run_reference(inits, hps, q)
        for n, pid in pids.items():
            assert_close(rt.get_master(pid), ref[n][0], ATOL, RTOL, f"{n} master ({dtype})")


def test_nvme_tier_bit_identical_to_cpu(scratch):
    inits, grads = _make_problem(seed=3, steps=12)
    results = {}
    for tier in ("cpu", "nvme"):
        cfg = base_config(tier, nvme_path=scratch if tier == "nvme" else None,
                          partition_numel=1024)
        with zoff.Runtime(cfg) as rt:
            pids, _, _ = _register(rt, inits)
            rt.finalize()
            _train(rt, pids, grads)
            results[tier] = {n: (rt.get_master(pid), *rt.get_state(pid))
                             for n, pid in pids.items()}
            if tier == "nvme":
                st = rt.stats()
                assert st["total_nvme_write_bytes"] > 0 and st["total_nvme_read_bytes"] > 0
    for n in inits:
        for a, b in zip(results["cpu"][n], results["nvme"][n]):
            np.testing.assert_array_equal(a, b, err_msg=n)


# ---- errors -------------------------------------------------------------------------------------
def test_bad_config_key_is_named():
    with pytest.raises(zoff.ZoffError) as e:
        zoff.Runtime({"zero_optimization": {"offload_optimizer": {"devise": "cpu"}}})
    assert e.value.status == _lib.ZOFF_ECONFIG and e.value.name == "ZOFF_ECONFIG"
    assert "devise" in e.value.message


def test_bad_config_value_and_missing_nvme_path():
    with pytest.raises(zoff.ZoffError) as e:
        zoff.Runtime({"gradient_clipping": "lots"})
    assert "gradient_clipping" in e.value.message
    with pytest.raises(zoff.ZoffError) as e:
        zoff.Runtime({"zero_optimization": {"offload_optimizer": {"device": "nvme"}}})
    assert "nvme_path" in e.value.message


def test_config_file_errors_name_the_file(scratch):
    missing = scratch / "nope.json"
    with pytest.raises(zoff.ZoffError) as e:
        zoff.Runtime(missing)
    assert e.value.name == "ENOENT" and "nope.json" in e.value.message
    bad = scratch / "bad.json"
    bad.write_text('{"fp16": {"enabled": true, "hysterisis": 2}}')
    with pytest.raises(zoff.ZoffError) as e:
        zoff.Runtime(bad)
    assert "bad.json" in e.value.message and "hysterisis" in e.value.message
    good = scratch / "good.json"
    good.write_text('{"optimizer": {"type": "AdamW", "params": {"lr": 0.25}}, '
                    '"zoff": {"device": "sim"}}')
    with zoff.Runtime(good) as rt:
        assert rt.get_group(0)["lr"] == pytest.approx(0.25)


def test_wrong_call_order_and_ids():
    with zoff.Runtime(base_config()) as rt:
        pid = rt.add_param("w", np.ones(8, np.float32))
        with pytest.raises(zoff.ZoffError) as e:
            rt.step()
        assert e.value.status == _lib.ZOFF_ESTATE and e.value.message
        with pytest.raises(zoff.ZoffError):
            rt.add_param("w", np.ones(8, np.float32))  # duplicate name
        rt.finalize()
        with pytest.raises(zoff.ZoffError):
            rt.add_param("late", np.ones(8, np.float32))
        with pytest.raises(zoff.ZoffError):
            rt.grad_ready(pid + 5)
        rt.set_grad(pid, np.ones(8, np.float32))
        rt.grad_ready(pid)
        with pytest.raises(zoff.ZoffError):
            rt.grad_ready(pid)  # twice in one step
        rt.step()
    with pytest.raises(zoff.ZoffError) as e:
        rt.step()
    assert e.value.status == _lib.ZOFF_ESTATE


def test_sim_device_capacity_error():
    with zoff.Runtime(base_config(sim_gpu_bytes=1 << 20)) as rt:
        with pytest.raises(zoff.ZoffError) as e:
            rt.add_param("big", np.zeros(1 << 20, np.float32))
        assert e.value.status == _lib.ZOFF_EDEVMEM and "sim_gpu_bytes" in e.value.message


# ---- plan, stats -------------------------------------------------------------------------------
def test_plan_cpu_and_nvme(scratch):
    n = 100_000_000
    cpu = zoff.plan(n, base_config(sim_gpu_bytes=8 << 30))
    assert cpu.fits, cpu.advice
    assert cpu.no_offload_bytes == 16 * n
    assert cpu.gpu_bytes < cpu.no_offload_bytes
    assert cpu.pinned_bytes + cpu.pageable_bytes >= 12 * n
    assert cpu.nvme_bytes == 0
    nvme = zoff.plan(n, base_config("nvme", nvme_path=scratch, sim_gpu_bytes=8 << 30))
    assert nvme.nvme_bytes >= 12 * n
    assert nvme.pinned_bytes + nvme.pageable_bytes < cpu.pinned_bytes + cpu.pageable_bytes
    tiny = zoff.plan(n, base_config(sim_gpu_bytes=1 << 20))
    assert not tiny.fits and tiny.advice
    with pytest.raises(zoff.ZoffError):
        zoff.plan(n, {"bogus": 1})


def test_runtime_plan_and_stats():
    inits, grads = _make_problem(seed=4, steps=3)
    with zoff.Runtime(base_config()) as rt:
        pids, _, _ = _register(rt, inits)
        rt.finalize()
        report = rt.plan()
        assert report.no_offload_bytes == 16 * sum(a.size for a in inits.values())
        _train(rt, pids, grads)
        st = rt.stats()
        grad_bytes = 4 * sum(a.size for a in inits.values())
        assert st["steps"] == 3 and st["skipped_steps"] == 0
        assert st["total_d2h_bytes"] == 3 * grad_bytes
        assert st["total_h2d_bytes"] >= 3 * grad_bytes
        assert st["device_name"].startswith("sim")
        assert st["cpu_isa"] in ("scalar", "avx2", "avx512")


# ---- state access and checkpoints -------------------------------------------------------------------
def test_get_set_state_and_step():
    rng = np.random.default_rng(5)
    with zoff.Runtime(base_config()) as rt:
        pid = rt.add_param("w", rng.standard_normal(300).astype(np.float32))
        rt.finalize()
        master = rng.standard_normal(300).astype(np.float32)
        m = rng.standard_normal(300).astype(np.float32) * 0.01
        v = rng.random(300).astype(np.float32) * 1e-4
        rt.set_state(pid, master=master, exp_avg=m, exp_avg_sq=v)
        rt.set_step(7)
        assert rt.step_count == 7
        rt.params_ready()
        np.testing.assert_array_equal(rt.get_param(pid), master)
        g = rng.standard_normal(300).astype(np.float32)
        rt.set_grad(pid, g)
        rt.grad_ready(pid)
        assert rt.step().step == 8
        p_ref, m_ref, v_ref = adam_reference(master, m, v, g, 8, lr=1e-3, weight_decay=0.01)
        assert_close(rt.get_master(pid), p_ref, ATOL, RTOL, "master after set_state")
        ea, eas = rt.get_state(pid)
        assert_close(ea, m_ref, ATOL, RTOL, "exp_avg after set_state")
        assert_close(eas, v_ref, ATOL * 1e-2, RTOL, "exp_avg_sq after set_state")


@pytest.mark.parametrize("load_tier", ["cpu", "nvme"])
def test_save_load_continues_bit_identically(scratch, load_tier):
    inits, grads = _make_problem(seed=6, steps=10)
    ckpt = scratch / "ckpt"

    def finish(rt, pids):
        return {n: (rt.get_master(pid), *rt.get_state(pid)) for n, pid in pids.items()}

    with zoff.Runtime(base_config()) as rt:  # uninterrupted
        pids, _, _ = _register(rt, inits)
        rt.finalize()
        _train(rt, pids, grads)
        want = finish(rt, pids)
    with zoff.Runtime(base_config()) as rt:  # first half, then save
        pids, _, _ = _register(rt, inits)
        rt.finalize()
        _train(rt, pids, grads[:5])
        rt.save(ckpt, extra={"epoch": 3, "data_pos": 12345})
    assert (ckpt / "optimizer.safetensors").is_file()
    cfg = base_config(load_tier, nvme_path=scratch if load_tier == "nvme" else None,
                      partition_numel=2048)
    zero = {n: np.zeros_like(a) for n, a in inits.items()}
    with zoff.Runtime(cfg) as rt:  # fresh runtime, different initial values: load, continue
        pids, _, _ = _register(rt, zero)
        rt.finalize()
        extra = rt.load(ckpt)
        assert extra == {"epoch": 3, "data_pos": 12345}
        assert rt.step_count == 5
        rt.params_ready()
        for n, pid in pids.items():
            np.testing.assert_array_equal(rt.get_param(pid), rt.get_master(pid))
        for t, gs in enumerate(grads[5:], start=6):
            for n, g in gs.items():
                rt.set_grad(pids[n], g)
                rt.grad_ready(pids[n])
            assert rt.step().step == t
        got = finish(rt, pids)
    for n in inits:
        for a, b in zip(got[n], want[n]):
            np.testing.assert_array_equal(a, b, err_msg=n)


def test_load_rejects_mismatch_and_corruption(scratch):
    ckpt = scratch / "c"
    with zoff.Runtime(base_config()) as rt:
        rt.add_param("w", np.ones(64, np.float32))
        rt.finalize()
        rt.save(ckpt)
    with pytest.raises(zoff.ZoffError) as e:  # the runtime is closed
        rt.load(ckpt)
    assert e.value.status == _lib.ZOFF_ESTATE
    with zoff.Runtime(base_config()) as rt:
        rt.add_param("other", np.ones(64, np.float32))
        rt.finalize()
        with pytest.raises(zoff.ZoffError) as e:
            rt.load(ckpt)
        assert "other" in e.value.message or "w" in e.value.message
    data = ckpt / "optimizer.safetensors"
    raw = bytearray(data.read_bytes())
    raw[-10] ^= 0x40
    data.write_bytes(bytes(raw))
    with zoff.Runtime(base_config()) as rt:
        rt.add_param("w", np.ones(64, np.float32))
        rt.finalize()
        with pytest.raises(zoff.ZoffError) as e:
            rt.load(ckpt)
        assert e.value.status == _lib.ZOFF_ECORRUPT and "w" in e.value.message
    with zoff.Runtime(base_config()) as rt:
        rt.add_param("w", np.ones(64, np.float32))
        rt.finalize()
        with pytest.raises(ValueError):
            rt.save(scratch / "d", extra={"blob": "x" * 5000})
