"""zoff.Runtime: a Python handle on one zoff_runtime, and zoff.plan.

This module owns the Runtime class (config, parameter groups, parameters, grad_ready, step,
params_ready, master/state access, checkpoints, stats, plan) and the device buffers it allocates
for numpy-level parameters. It uses numpy for host arrays; it never imports torch.

Two ways to register a parameter:
  - add_param(name, init, dtype): the runtime allocates the device parameter and gradient
    buffers (zoff_device_alloc), uploads `init` cast to dtype, and uses `init` (as fp32) for the
    master weights. set_grad() uploads a gradient, get_param() downloads the 16-bit/fp32 param.
  - add_param_ptr(name, numel, dtype, dev_param, dev_grad): the caller owns device memory
    (e.g. CUDA tensors' data pointers); used by zoff.torch.

Thread safety: a Runtime may be called from several threads (e.g. torch's autograd thread
through backward hooks and the trainer's thread): every call takes the runtime's lock, so the C
runtime sees one thread at a time, as include/zoff.h requires.
"""

import ctypes
import json
import os
import threading
from dataclasses import dataclass

import numpy as np

from . import _dtypes, _lib
from ._lib import ZoffError


def _config_json_text(config):
    """(json_text or None, path or None) for config = None | dict | path (str / PathLike)."""
    if config is None:
        return None, None
    if isinstance(config, dict):
        return json.dumps(config), None
    if isinstance(config, (str, os.PathLike)):
        return None, os.fspath(config)
    raise TypeError(
        f"zoff: config must be a dict, a path to a JSON file or None, not {type(config).__name__}"
    )


class _ConfigBuffer:
    """An opaque zoff_config filled by the library (the binding never reads its fields)."""

    def __init__(self, config):
        self.buf = ctypes.create_string_buffer(_lib.CONFIG_BUFFER_BYTES)
        text, path = _config_json_text(config)
        lib = _lib.lib()
        if path is not None:
            st = lib.zoff_config_from_json(self.buf, path.encode())
        elif text is not None:
            st = lib.zoff_config_from_json_string(self.buf, text.encode())
        else:
            st = lib.zoff_config_default(self.buf)
        _lib.check(st, None)
        size = ctypes.c_size_t.from_buffer(self.buf).value
        if not 0 < size <= _lib.CONFIG_BUFFER_BYTES:
            raise ZoffError(
                _lib.ZOFF_EINTERNAL,
                "ZOFF_EINTERNAL",
                f"zoff_config reports struct_size {size}, outside the binding's "
                f"{_lib.CONFIG_BUFFER_BYTES}-byte buffer (library and binding do not match)",
            )


def _check_struct_size(reported, cls):
    if reported != ctypes.sizeof(cls):
        raise ZoffError(
            _lib.ZOFF_EINTERNAL,
            "ZOFF_EINTERNAL",
            f"{cls.__name__}: library struct_size {reported} != binding's "
            f"{ctypes.sizeof(cls)} (libzoff {_lib.library_path()} does not match this package)",
        )


def group_defaults():
    """The library's default group hyperparameters as a dict."""
    g = _lib.GroupConfig()
    _lib.check(_lib.lib().zoff_group_config_default(ctypes.byref(g)))
    _check_struct_size(g.struct_size, _lib.GroupConfig)
    return _group_to_dict(g)


def _group_to_dict(g):
    return {
        "lr": float(g.lr),
        "betas": (float(g.beta1), float(g.beta2)),
        "eps": float(g.eps),
        "weight_decay": float(g.weight_decay),
        "adamw": bool(g.adamw_mode),
        "bias_correction": bool(g.bias_correction),
    }


def _group_from(base, **hp):
    """A GroupConfig from the defaults, then the dict `base`, then keyword overrides."""
    g = _lib.GroupConfig()
    _lib.check(_lib.lib().zoff_group_config_default(ctypes.byref(g)))
    _check_struct_size(g.struct_size, _lib.GroupConfig)
    merged = dict(base or {})
    merged.update({k: v for k, v in hp.items() if v is not None})
    unknown = set(merged) - {"lr", "betas", "eps", "weight_decay", "adamw", "bias_correction"}
    if unknown:
        raise ValueError(f"zoff: unknown group hyperparameter(s) {sorted(unknown)}")
    if "lr" in merged:
        g.lr = float(merged["lr"])
    if "betas" in merged:
        b1, b2 = merged["betas"]
        g.beta1, g.beta2 = float(b1), float(b2)
    if "eps" in merged:
        g.eps = float(merged["eps"])
    if "weight_decay" in merged:
        g.weight_decay = float(merged["weight_decay"])
    if "adamw" in merged:
        g.adamw_mode = 1 if merged["adamw"] else 0
    if "bias_correction" in merged:
        g.bias_correction = 1 if merged["bias_correction"] else 0
    return g


@dataclass
class StepResult:
    """What one zoff_step reported (zoff_step_result)."""

    step: int
    skipped: bool
    overflow: bool
    grad_norm: float
    clip_coef: float
    loss_scale: float
    step_ms: float
    adam_ms: float
    wait_grads_ms: float
    nvme_wait_ms: float
    params_updated: int = 0
    params_without_grad: int = 0
    params_nonfinite: int = 0
    accumulating: bool = False  # gradient accumulation: a micro-batch was summed, no update
    micro_step: int = 0  # micro-batches of the current window done (0 at a boundary)


@dataclass
class PlanReport:
    """zoff_plan's prediction: bytes per tier, what is available, and whether it fits."""

    gpu_bytes: int
    pinned_bytes: int
    pageable_bytes: int
    nvme_bytes: int
    gpu_available: int
    host_available: int
    nvme_available: int
    no_offload_bytes: int
    fits: bool
    advice: str


def _plan_from(c):
    return PlanReport(
        gpu_bytes=int(c.gpu_bytes),
        pinned_bytes=int(c.pinned_bytes),
        pageable_bytes=int(c.pageable_bytes),
        nvme_bytes=int(c.nvme_bytes),
        gpu_available=int(c.gpu_available),
        host_available=int(c.host_available),
        nvme_available=int(c.nvme_available),
        no_offload_bytes=int(c.no_offload_bytes),
        fits=bool(c.fits),
        advice=c.advice.decode("utf-8", "replace"),
    )


def plan(total_params, config=None):
    """Predicts bytes per tier for a model of `total_params` parameters with `config` (dict,
    JSON file path or None for the defaults) without allocating anything. Returns a PlanReport
    (fits False and advice set when it would not fit). Raises ZoffError on a bad config."""
    cfg = _ConfigBuffer(config)
    out = _lib.PlanReportC()
    out.struct_size = ctypes.sizeof(_lib.PlanReportC)
    _lib.check(_lib.lib().zoff_plan(cfg.buf, int(total_params), ctypes.byref(out)), None)
    return _plan_from(out)


@dataclass
class _Param:
    name: str
    numel: int
    dtype: int
    dev_param: int
    dev_grad: int
    group: int
    owned: bool  # device buffers allocated by this Runtime


def _f32_ptr(arr):
    return arr.ctypes.data_as(ctypes.c_void_p)


class Runtime:
    """One zoff runtime.

    Runtime(config=None): config is a dict (DeepSpeed-style keys, serialised to JSON and
    passed to zoff_create_from_json), a path to a JSON file (read by zoff_config_from_json,
    whose errors name the file and key), or None for the defaults. Raises ZoffError when the
    config is invalid or the device cannot be opened.

    Lifecycle: add_group / add_param ... -> finalize() -> per step: set_grad + grad_ready for each
    parameter, step(), params_ready() -> close(). Also a context manager.
    """

    def __init__(self, config=None):
        self._lock = threading.RLock()
        self._h = None
        self._params = []
        self._closed = False
        lib = _lib.lib()
        handle = ctypes.c_void_p()
        text, path = _config_json_text(config)
        if path is not None:
            cfg = _ConfigBuffer(path)
            _lib.check(lib.zoff_create(cfg.buf, ctypes.byref(handle)), None)
        else:
            arg = text.encode() if text is not None else None
            _lib.check(lib.zoff_create_from_json(arg, ctypes.byref(handle)), None)
        self._h = handle
        self._config = config if isinstance(config, dict) else (path if path else None)

    # ---- plumbing ---------------------------------------------------------------------------
    @property
    def handle(self):
        """The zoff_runtime* as a ctypes.c_void_p (for code that calls libzoff directly)."""
        self._alive()
        return self._h

    def _alive(self):
        if self._closed or self._h is None:
            raise ZoffError(_lib.ZOFF_ESTATE, "ZOFF_ESTATE", "the runtime was closed")

    def _call(self, fname, *args):
        with self._lock:
            self._alive()
            st = getattr(_lib.lib(), fname)(self._h, *args)
            if st < 0:
                raise _lib.error_for(st, self._h)
            return st

    def close(self):
        """Destroys the runtime (waits for work in flight, frees device buffers it allocated and
        host memory, removes swap files). Idempotent."""
        with self._lock:
            if not self._closed and self._h is not None:
                _lib.lib().zoff_destroy(self._h)
            self._closed = True
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- groups -----------------------------------------------------------------------------
    def add_group(self, lr=None, betas=None, eps=None, weight_decay=None, adamw=None,
                  bias_correction=None):
        """Adds a parameter group (before finalize); unspecified hyperparameters take the
        library defaults. Returns the group id."""
        g = _group_from(None, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        adamw=adamw, bias_correction=bias_correction)
        gid = ctypes.c_int(-1)
        self._call("zoff_add_group", ctypes.byref(g), ctypes.byref(gid))
        return gid.value

    def get_group(self, group_id):
        """A group's hyperparameters as a dict (lr, betas, eps, weight_decay, adamw,
        bias_correction)."""
        g = _lib.GroupConfig()
        g.struct_size = ctypes.sizeof(_lib.GroupConfig)
        self._call("zoff_get_group", int(group_id), ctypes.byref(g))
        return _group_to_dict(g)

    def set_group(self, group_id, lr=None, betas=None, eps=None, weight_decay=None, adamw=None,
                  bias_correction=None):
        """Changes some of a group's hyperparameters (the rest stay); takes effect at the next
        step."""
        g = _group_from(self.get_group(group_id), lr=lr, betas=betas, eps=eps,
                        weight_decay=weight_decay, adamw=adamw, bias_correction=bias_correction)
        self._call("zoff_set_group", int(group_id), ctypes.byref(g))

    # ---- parameters -------------------------------------------------------------------------
    def add_param_ptr(self, name, numel, dtype, dev_param, dev_grad, init_master=None, group=0):
        """Registers a parameter whose device buffers the caller owns (they must stay valid
        until close()). dev_param/dev_grad are integer addresses; dev_grad None (or 0): the
        gradient goes through zoff's device buckets (grad_push). init_master: None (read from
        dev_param) or an array of numel fp32 values (copied). Returns the parameter id."""
        dt = _dtypes.parse(dtype)
        init = None
        if init_master is not None:
            init = np.ascontiguousarray(init_master, dtype=np.float32).reshape(-1)
            if init.size != int(numel):
                raise ValueError(f"zoff: init_master of {name!r} has {init.size} values, "
                                 f"expected {int(numel)}")
        pid = ctypes.c_int(-1)
        self._call("zoff_add_param", str(name).encode(), int(numel), dt,
                   ctypes.c_void_p(int(dev_param)),
                   ctypes.c_void_p(int(dev_grad)) if dev_grad else None,
                   _f32_ptr(init) if init is not None else None, int(group), ctypes.byref(pid))
        self._params.append(_Param(str(name), int(numel), dt, int(dev_param), int(dev_grad or 0),
                                   int(group), False))
        return pid.value

    def device_alloc(self, nbytes):
        """Allocates device memory from the runtime's backend; returns its address (freed by
        device_free or close)."""
        ptr = ctypes.c_void_p()
        self._call("zoff_device_alloc", int(nbytes), ctypes.byref(ptr))
        return int(ptr.value)

    def device_free(self, address):
        with self._lock:
            self._alive()
            _lib.lib().zoff_device_free(self._h, ctypes.c_void_p(int(address)))

    def upload(self, dev_dst, host_array, stream=None):
        """Synchronous copy of a contiguous numpy array's bytes to device address dev_dst."""
        a = np.ascontiguousarray(host_array)
        self._call("zoff_device_upload", ctypes.c_void_p(int(dev_dst)),
                   a.ctypes.data_as(ctypes.c_void_p), a.nbytes, _stream(stream))

    def download(self, host_array, dev_src, stream=None):
        """Synchronous copy of host_array.nbytes from device address dev_src into host_array
        (contiguous, writable)."""
        if not host_array.flags["C_CONTIGUOUS"] or not host_array.flags["WRITEABLE"]:
            raise ValueError("zoff: download needs a contiguous writable array")
        self._call("zoff_device_download", host_array.ctypes.data_as(ctypes.c_void_p),
                   ctypes.c_void_p(int(dev_src)), host_array.nbytes, _stream(stream))

    def upload_raw(self, dev_dst, host_address, nbytes, stream=None):
        """Synchronous copy of nbytes from host address host_address to device address
        dev_dst."""
        self._call("zoff_device_upload", ctypes.c_void_p(int(dev_dst)),
                   ctypes.c_void_p(int(host_address)), int(nbytes), _stream(stream))

    def download_raw(self, host_address, dev_src, nbytes, stream=None):
        """Synchronous copy of nbytes from device address dev_src to host address
        host_address."""
        self._call("zoff_device_download", ctypes.c_void_p(int(host_address)),
                   ctypes.c_void_p(int(dev_src)), int(nbytes), _stream(stream))

    def add_param(self, name, init, dtype="f32", group=0):
        """Registers a parameter with device buffers allocated here: `init` (array of floats,
        any shape) is uploaded cast to dtype ("f32", "f16", "bf16") and, as fp32, becomes the
        master weights. Returns the parameter id."""
        dt = _dtypes.parse(dtype)
        values = np.ascontiguousarray(init, dtype=np.float32).reshape(-1)
        nbytes = values.size * _dtypes.SIZES[dt]
        dev_param = self.device_alloc(nbytes)
        dev_grad = self.device_alloc(nbytes)
        self.upload(dev_param, _dtypes.encode(values, dt))
        pid = self.add_param_ptr(name, values.size, dt, dev_param, dev_grad, init_master=values,
                                 group=group)
        self._params[pid].owned = True
        return pid

    def _param(self, pid):
        if not 0 <= int(pid) < len(self._params):
            raise ZoffError(_lib.ZOFF_EINVAL, "ZOFF_EINVAL",
                            f"unknown parameter id {pid} ({len(self._params)} registered)")
        return self._params[int(pid)]

    def param_info(self, pid):
        """(name, numel, dtype name, group) of a parameter."""
        p = self._param(pid)
        return p.name, p.numel, _dtypes.NAMES[p.dtype], p.group

    @property
    def num_params(self):
        """Number of registered parameters (zoff_param_count)."""
        n = ctypes.c_int(0)
        self._call("zoff_param_count", ctypes.byref(n))
        return n.value

    def finalize(self):
        """Plans, allocates host memory and swap; the runtime is then ready for steps."""
        self._call("zoff_finalize")

    # ---- parameter streaming (docs/runtime.md "Parameter streaming") -------------------------
    def add_unit(self, name, param_ids):
        """Groups registered parameters (ids) into a unit fetched together. Before finalize.
        Returns the unit id."""
        ids = [int(i) for i in param_ids]
        arr = (ctypes.c_int * max(1, len(ids)))(*ids)
        uid = ctypes.c_int(-1)
        self._call("zoff_add_unit", str(name).encode(), arr, len(ids), ctypes.byref(uid))
        return uid.value

    def set_schedule(self, forward, backward=None):
        """The forward order of the units (ids); backward None: forward reversed."""
        f = [int(u) for u in forward]
        fa = (ctypes.c_int * max(1, len(f)))(*f)
        if backward is None:
            self._call("zoff_set_schedule", fa, len(f), None, 0)
        else:
            b = [int(u) for u in backward]
            ba = (ctypes.c_int * max(1, len(b)))(*b)
            self._call("zoff_set_schedule", fa, len(f), ba, len(b))

    def fetch(self, unit, stream=None):
        """Makes the unit's 16-bit weights resident (stream-ordered; None: blocks)."""
        self._call("zoff_fetch", int(unit), _stream(stream))

    def release(self, unit, stream=None):
        """Ends the use of a fetched unit by the work queued on `stream` so far."""
        self._call("zoff_release", int(unit), _stream(stream))

    def param_ptr(self, pid):
        """Device address of a parameter's 16-bit weights (streamed: while its unit is
        fetched)."""
        ptr = ctypes.c_void_p()
        self._call("zoff_param_ptr", int(pid), ctypes.byref(ptr))
        return int(ptr.value or 0)

    # ---- per step ---------------------------------------------------------------------------
    def set_grad(self, pid, grad):
        """Uploads `grad` (numel floats) cast to the parameter's dtype into its device gradient
        buffer (synchronously). Follow with grad_ready(pid)."""
        p = self._param(pid)
        g = np.ascontiguousarray(grad, dtype=np.float32).reshape(-1)
        if g.size != p.numel:
            raise ValueError(f"zoff: gradient of {p.name!r} has {g.size} values, "
                             f"expected {p.numel}")
        self.upload(p.dev_grad, _dtypes.encode(g, p.dtype))

    def grad_ready(self, pid, stream=None):
        """Declares pid's gradient final once `stream`'s queued work is done (None: it already
        is)."""
        self._call("zoff_grad_ready", int(pid), _stream(stream))

    def grad_push(self, pid, dev_src, numel, dtype, stream=None):
        """Hands pid's gradient (numel elements of dtype at device address dev_src) to zoff's
        gradient buckets: the copy is queued on `stream` (None: done before this returns), so
        dev_src may be reused in stream order right after. For parameters registered with
        dev_grad None."""
        self._call("zoff_grad_push", int(pid), ctypes.c_void_p(int(dev_src)), int(numel),
                   _dtypes.parse(dtype), _stream(stream))

    def step(self, zero_missing_grads=False):
        """Runs the optimizer step; returns a StepResult. Parameters whose gradient was not
        declared this step are left untouched (torch's .grad None), or get a zero gradient with
        zero_missing_grads=True."""
        flags = _lib.STEP_ZERO_MISSING_GRADS if zero_missing_grads else 0
        args = _lib.StepArgs(ctypes.sizeof(_lib.StepArgs), flags)
        res = _lib.StepResultC()
        res.struct_size = ctypes.sizeof(_lib.StepResultC)
        self._call("zoff_step", ctypes.byref(args), ctypes.byref(res))
        return StepResult(
            step=int(res.step), skipped=bool(res.skipped), overflow=bool(res.overflow),
            grad_norm=float(res.grad_norm), clip_coef=float(res.clip_coef),
            loss_scale=float(res.loss_scale), step_ms=float(res.step_ms),
            adam_ms=float(res.adam_ms), wait_grads_ms=float(res.wait_grads_ms),
            nvme_wait_ms=float(res.nvme_wait_ms), params_updated=int(res.params_updated),
            params_without_grad=int(res.params_without_grad),
            params_nonfinite=int(res.params_nonfinite), accumulating=bool(res.accumulating),
            micro_step=int(res.micro_step))

    def grads_discard(self):
        """Forgets the gradients declared since the last step (zoff_grads_discard): the next
        step uses only gradients declared after this call."""
        self._call("zoff_grads_discard")

    def params_ready(self, stream=None):
        """Makes `stream` wait until the last step's parameter uploads are done (None: blocks
        the calling thread until then)."""
        self._call("zoff_params_ready", _stream(stream))

    def get_param(self, pid):
        """Downloads a parameter's device copy (its dtype) and returns it as float32."""
        p = self._param(pid)
        raw = _dtypes.empty_raw(p.numel, p.dtype)
        self.download(raw, p.dev_param)
        return _dtypes.decode(raw, p.dtype)

    # ---- state --------------------------------------------------------------------------------
    def get_master(self, pid):
        """The fp32 master weights of a parameter (a new float32 array)."""
        p = self._param(pid)
        out = np.empty(p.numel, dtype=np.float32)
        self._call("zoff_get_master", int(pid), _f32_ptr(out))
        return out

    def get_state(self, pid):
        """(exp_avg, exp_avg_sq) of a parameter as new float32 arrays."""
        p = self._param(pid)
        m = np.empty(p.numel, dtype=np.float32)
        v = np.empty(p.numel, dtype=np.float32)
        self._call("zoff_get_state", int(pid), _f32_ptr(m), _f32_ptr(v))
        return m, v

    def set_state(self, pid, master=None, exp_avg=None, exp_avg_sq=None):
        """Overwrites a parameter's master weights (None: keep the current ones) and Adam state
        (None: leave unchanged); the device copy is re-uploaded (call params_ready before
        reading it)."""
        p = self._param(pid)

        def arr(x, what):
            if x is None:
                return None
            a = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
            if a.size != p.numel:
                raise ValueError(f"zoff: {what} of {p.name!r} has {a.size} values, "
                                 f"expected {p.numel}")
            return a

        mst = arr(master, "master")
        if mst is None:
            mst = self.get_master(pid)
        m, v = arr(exp_avg, "exp_avg"), arr(exp_avg_sq, "exp_avg_sq")
        self._call("zoff_set_state", int(pid), _f32_ptr(mst),
                   _f32_ptr(m) if m is not None else None,
                   _f32_ptr(v) if v is not None else None)

    @property
    def step_count(self):
        """Optimizer steps taken (zoff_get_step)."""
        s = ctypes.c_int64(0)
        self._call("zoff_get_step", ctypes.byref(s))
        return s.value

    def set_step(self, step):
        """Sets the step counter and every parameter's step count (the next step uses step+1
        for bias correction); after finalize, between steps."""
        self._call("zoff_set_step", int(step))

    def get_param_step(self, pid):
        """Updates applied to parameter pid so far (its bias-correction step count)."""
        s = ctypes.c_int64(0)
        self._call("zoff_get_param_step", int(pid), ctypes.byref(s))
        return s.value

    def set_param_step(self, pid, step):
        """Sets parameter pid's step count (between steps)."""
        self._call("zoff_set_param_step", int(pid), int(step))

    @property
    def loss_scale(self):
        """The scale the trainer multiplies its loss by (1 without fp16 dynamic scaling)."""
        s = ctypes.c_float(0)
        self._call("zoff_get_loss_scale", ctypes.byref(s))
        return float(s.value)

    @property
    def device_host_accessible(self):
        """True when device memory is host-addressable (sim backend)."""
        with self._lock:
            self._alive()
            return bool(_lib.lib().zoff_device_host_accessible(self._h))

    # ---- checkpoints ------------------------------------------------------------------------
    def save(self, directory, extra=None):
        """Writes a checkpoint into `directory` (atomically replaced). `extra`: a JSON-able dict
        (at most 4 KiB as JSON) stored with it, e.g. the trainer's data position."""
        d = os.fspath(directory).encode()
        if extra is None:
            self._call("zoff_save", d)
            return
        text = json.dumps(extra)
        if len(text.encode()) > _lib.USER_JSON_MAX_BYTES:
            raise ValueError(f"zoff: extra state is {len(text.encode())} bytes of JSON, at most "
                             f"{_lib.USER_JSON_MAX_BYTES}")
        self._call("zoff_save_with", d, text.encode())

    def load(self, directory):
        """Loads a checkpoint written by save(); returns the stored `extra` dict (None if none).
        The device copies of the parameters are re-uploaded (call params_ready before reading
        them)."""
        buf = ctypes.create_string_buffer(_lib.USER_JSON_MAX_BYTES + 1)
        self._call("zoff_load_with", os.fspath(directory).encode(), buf, len(buf))
        text = buf.value.decode()
        return json.loads(text) if text else None

    # ---- observability ----------------------------------------------------------------------
    def stats(self):
        """zoff_get_stats as a dict (links as dicts of bytes, busy_ms, gbps)."""
        s = _lib.StatsC()
        s.struct_size = ctypes.sizeof(_lib.StatsC)
        self._call("zoff_get_stats", ctypes.byref(s))
        out = {}
        for name, ctype in _lib.StatsC._fields_:
            if name == "struct_size":
                continue
            val = getattr(s, name)
            if ctype is _lib.LinkStats:
                out[name] = {"bytes": int(val.bytes), "busy_ms": float(val.busy_ms),
                             "gbps": float(val.gbps)}
            elif isinstance(val, bytes):
                out[name] = val.decode("utf-8", "replace")
            else:
                out[name] = val
        return out

    def plan(self, total_params=None):
        """zoff.plan with this runtime's config; total_params defaults to the sum of the
        registered parameters' numel."""
        if total_params is None:
            total_params = sum(p.numel for p in self._params)
        return plan(total_params, self._config)


def _stream(stream):
    """A zoff_stream argument from None, an int address or a ctypes pointer."""
    if stream is None:
        return None
    if isinstance(stream, ctypes.c_void_p):
        return stream
    return ctypes.c_void_p(int(stream))
