"""zoff.torch: AdamW, Adam, Lion and Adagrad as torch.optim.Optimizer subclasses backed by a zoff
runtime (state_format="fp32" | "bf16" | "q8" chooses how zoff stores the moments).

This module owns the drop-in optimizers: the mapping of torch parameter groups to zoff groups,
the registration of each parameter with zoff, the per-step copies between torch tensors and
zoff's device buffers, the optional backward hooks, and the torch-form state_dict.

Where the data lives and what is copied (per parameter, numel elements of the param's dtype):
  - Gradients go through zoff's device gradient buckets (zoff_grad_push; every parameter is
    registered with dev_grad NULL): no full-size gradient buffer is kept for zoff.
  - CPU tensors (zoff's sim device, host-addressable): zoff owns a device parameter buffer per
    parameter and the optimizer one scratch device buffer of the largest parameter's size. Each
    gradient is copied into the scratch buffer and pushed (zoff copies it into a bucket before
    the push returns); after zoff_step and params_ready(NULL) the updated parameter (fp32, fp16
    or bf16, rounded from the fp32 master by zoff) is copied from the parameter buffer back into
    p. The fp32 master weights and Adam moments live in zoff (pinned host memory or NVMe).
  - CUDA tensors (zoff's CUDA backend; this path has never run on a real GPU in this project's
    tests): p's own storage is the device parameter (zoff's H2D copies write straight into it),
    and p.grad itself is pushed on the current CUDA stream (converted to p's dtype first when it
    differs); params_ready makes the current stream wait for the new parameters.
  - CPU tensors with a CUDA backend (config zoff.device "cuda" / "auto" on a GPU machine, or
    ZOFF_DEVICE=cuda): the gradient is uploaded into the scratch buffer, parameters come back
    with zoff_device_download (synchronous; never run here either).

grad_hooks=True: each gradient is pushed from register_post_accumulate_grad_hook as soon as
autograd has accumulated it, and p.grad is set to None right after (the hook frees it), so the
model never holds a full set of gradients. Gradient accumulation (config
gradient_accumulation_steps K > 1, hooks required): call loss.backward() once per micro-batch
and optimizer.step() after the K-th; zoff sums the micro-batches in fp32 and the update uses
their mean (do not divide the loss by K yourself, unlike plain torch). A new micro-batch is
recognised when a hook fires for a parameter already handed in the current one. zero_grad() is
harmless at any point (p.grad is already None) and does not discard zoff's partial sums.

Thread safety: like torch optimizers, one optimizer is driven by one training loop; backward
hooks may run on autograd threads and are serialised by the runtime's lock.
"""

import contextlib
import copy
import json
import os
import warnings
import weakref

import numpy as np
import torch

from . import _lib
from ._lib import ZoffError
from .runtime import Runtime

_ZDTYPE = {
    torch.float32: _lib.DTYPE_F32,
    torch.float16: _lib.DTYPE_F16,
    torch.bfloat16: _lib.DTYPE_BF16,
}
_UNSUPPORTED_FLAGS = ("amsgrad", "maximize", "capturable", "differentiable")


def _as_float(x):
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def _load_config(config):
    """A dict copy of config (None, dict, or a path to a JSON file)."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return copy.deepcopy(config)
    if isinstance(config, (str, os.PathLike)):
        with open(os.fspath(config), encoding="utf-8") as f:
            try:
                loaded = json.load(f)
            except json.JSONDecodeError as e:
                raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG",
                                f"{os.fspath(config)}: not valid JSON: {e}") from None
        if not isinstance(loaded, dict):
            raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG",
                            f"{os.fspath(config)}: the top level must be a JSON object")
        return loaded
    raise TypeError(f"zoff: config must be a dict, a JSON file path or None, "
                    f"not {type(config).__name__}")


class _Slot:
    """One registered parameter: the torch tensor and its zoff buffers."""

    __slots__ = ("param", "pid", "name", "numel", "nbytes", "mode", "dev_param", "dev_grad", "shape",
                 "param_view", "grad_view", "grad_buf", "handed", "version")


def _host_view(address, nbytes, dtype):
    """A 1-D torch tensor over host-addressable memory at `address` (zoff sim device memory).
    The tensor does not own the memory: it is valid while the runtime lives."""
    import ctypes

    raw = (ctypes.c_char * nbytes).from_address(address)
    return torch.frombuffer(raw, dtype=dtype)


class _ZoffOptimizer(torch.optim.Optimizer):
    """Common implementation of AdamW (decoupled weight decay) and Adam (L2 weight decay)."""

    _adamw = True
    _optim_type = None  # None: whatever the config says (Adam / AdamW); else "Lion", "Adagrad"
    _optim_params = {}  # extra optimizer.params for the config (Adagrad: lr_decay, ...)

    def __init__(self, params, lr, betas, eps, weight_decay, amsgrad=False, maximize=False,
                 foreach=None, capturable=False, differentiable=False, fused=None,
                 offload="cpu", nvme_path=None, config=None, grad_hooks=False,
                 state_format=None):
        if state_format not in (None, "fp32", "bf16", "q8"):
            raise ValueError(f"zoff: state_format must be 'fp32', 'bf16' or 'q8', not "
                             f"{state_format!r}")
        self._state_format = state_format
        if not 0.0 <= _as_float(lr):
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if offload not in ("cpu", "nvme"):
            raise ValueError(f"zoff: offload must be 'cpu' or 'nvme', not {offload!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused)
        self._rt = None
        self._slots = []
        self._group_ids = []
        self._pushed = []
        self._hooks = []
        self._defer_hooks = 0
        self._scratch = 0
        self._scratch_view = None
        self._accum = 1
        self._micro = 0
        self._building = True
        self.last_step_result = None
        self._stream = None  # zoff.torch.stream(): {id(param): unit index}, unit lists
        self._dist = None  # zoff.dist.TorchCollectives with several ranks (kept alive)
        self._nranks = 1
        self._setup_args = (offload, nvme_path, config, grad_hooks)
        super().__init__(params, defaults)
        self._building = False
        try:
            self._setup(offload, nvme_path, config, grad_hooks)
        except BaseException:
            self.close()
            raise

    # ---- construction ---------------------------------------------------------------------
    def add_param_group(self, param_group):
        if not self._building:
            raise ZoffError(_lib.ZOFF_ESTATE, "ZOFF_ESTATE",
                            "zoff.torch: parameter groups cannot be added after the optimizer "
                            "was created (zoff registers every parameter at construction)")
        for flag in _UNSUPPORTED_FLAGS:
            if param_group.get(flag, self.defaults.get(flag, False)):
                raise ValueError(f"zoff.torch: {flag}=True is not supported")
        super().add_param_group(param_group)

    def _setup(self, offload, nvme_path, config, grad_hooks):
        params = [p for g in self.param_groups for p in g["params"]]
        kinds = {p.device.type for p in params if p.requires_grad}
        dtypes = {p.dtype for p in params if p.requires_grad}
        for dt in dtypes:
            if dt not in _ZDTYPE:
                raise TypeError(f"zoff.torch: parameters of dtype {dt} are not supported "
                                "(float32, float16, bfloat16)")
        if torch.float16 in dtypes and torch.bfloat16 in dtypes:
            raise TypeError("zoff.torch: float16 and bfloat16 parameters cannot be mixed in "
                            "one optimizer (zoff runs either fp16 or bf16 mixed precision)")
        if len(kinds) > 1:
            raise TypeError(f"zoff.torch: all parameters must be on one kind of device, got "
                            f"{sorted(kinds)}")
        cuda_devices = {p.device.index for p in params if p.device.type == "cuda"}
        if len(cuda_devices) > 1:
            raise TypeError("zoff.torch: parameters on several CUDA devices; use one "
                            "optimizer per device")
        on_cuda = kinds == {"cuda"}

        cfg = _load_config(config)
        if self._optim_type is not None:
            opt = cfg.setdefault("optimizer", {})
            if not isinstance(opt, dict):
                raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG",
                                "optimizer: expected a JSON object")
            opt["type"] = self._optim_type
            opt.setdefault("params", {}).update(self._optim_params)
        if self._state_format is not None:
            z = cfg.setdefault("zoff", {})
            if not isinstance(z, dict):
                raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG",
                                "zoff: expected a JSON object")
            z["state_format"] = self._state_format
        zero = cfg.setdefault("zero_optimization", {})
        if not isinstance(zero, dict):
            raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG",
                            "zero_optimization: expected a JSON object")
        off = zero.setdefault("offload_optimizer", {})
        if not isinstance(off, dict):
            raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG",
                            "zero_optimization.offload_optimizer: expected a JSON object")
        off["device"] = offload
        if nvme_path is not None:
            off["nvme_path"] = os.fspath(nvme_path)
        elif offload == "nvme" and not off.get("nvme_path"):
            raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG",
                            "zoff.torch: offload=\"nvme\" needs nvme_path= (a directory for the "
                            "swap files; created when missing), e.g. nvme_path=\"/mnt/nvme/zoff\"")
        if torch.float16 in dtypes and "fp16" not in cfg:
            # No loss scaling unless asked for: a drop-in optimizer's user does not scale the
            # loss. With dynamic scaling in the config, multiply the loss by self.loss_scale.
            cfg["fp16"] = {"enabled": True, "loss_scale": 1.0}
        if torch.bfloat16 in dtypes and "bf16" not in cfg:
            cfg["bf16"] = {"enabled": True}
        dev_bytes = sum(2 * p.numel() * p.element_size() for p in params if p.requires_grad)
        if self._stream is not None:
            # streamed weights leave the device: their gradients, the resident params and
            # prefetch_depth + 1 unit slots stay
            streamed = self._stream["of"]
            unit_bytes = [sum(p.numel() * p.element_size() for p in u) for u in
                          self._stream["units"]]
            depth = self._stream["prefetch_depth"]
            dev_bytes = sum((1 if id(p) in streamed else 2) * p.numel() * p.element_size()
                            for p in params if p.requires_grad)
            dev_bytes += (depth + 1) * (max(unit_bytes) + 4096 * 16)
            op = zero.setdefault("offload_param", {})
            op["device"] = "cpu"
            op["buffer_count"] = depth + 1
        _device_config(cfg, "cuda" if on_cuda else "sim",
                       next(iter(cuda_devices)) if on_cuda else 0, dev_bytes)
        if on_cuda and str(cfg["zoff"]["device"]).lower() == "sim":
            raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG",
                            "zoff.device is \"sim\" but the parameters are CUDA tensors: they "
                            "need the \"cuda\" backend (leave the key out to choose "
                            "automatically)")
        self.zoff_config = cfg
        kw = {"zero_optimization.offload_optimizer.device": "offload=",
              "zero_optimization.offload_optimizer.nvme_path": "nvme_path="}
        self._scheduled = isinstance(cfg.get("scheduler"), dict)
        self._accum = int(cfg.get("gradient_accumulation_steps", 1) or 1)
        if self._accum > 1 and not grad_hooks:
            raise ValueError("zoff.torch: gradient_accumulation_steps > 1 needs grad_hooks=True "
                             "(zoff sums the micro-batches as the hooks hand them over; without "
                             "hooks torch accumulates .grad itself: keep the config at 1)")
        # torchrun / torch.distributed with several ranks: zoff's collectives over it
        self._dist = _collectives_for(cfg, on_cuda)
        self._nranks = self._dist.size if self._dist is not None else 1
        with _kwarg_errors(kw if nvme_path is not None else
                           {"zero_optimization.offload_optimizer.device": "offload="}):
            if self._dist is not None:
                self._dist.use()
            try:
                self._rt = Runtime(cfg)
            finally:
                if self._dist is not None:
                    self._dist.clear()
        if on_cuda and self._rt.device_host_accessible:
            raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG",
                            "the parameters are CUDA tensors but zoff opened the sim device "
                            "(ZOFF_DEVICE=sim in the environment?)")

        for gi, group in enumerate(self.param_groups):
            hp = self._group_hparams(group)
            if gi == 0:
                self._rt.set_group(0, **hp)
                gid = 0
            else:
                gid = self._rt.add_group(**hp)
            self._group_ids.append(gid)
            self._pushed.append(hp)

        host_ok = self._rt.device_host_accessible
        if not on_cuda:
            big = max((p.numel() * p.element_size() for p in params if p.requires_grad),
                      default=0)
            if big:
                self._scratch = self._rt.device_alloc(big)
                if host_ok:
                    self._scratch_view = (_host_view(self._scratch, big, torch.uint8), big)
        index = 0
        for gi, group in enumerate(self.param_groups):
            names = group.get("param_names")
            for pi, p in enumerate(group["params"]):
                name = names[pi] if names else f"param.{index}"
                index += 1
                if not p.requires_grad or p.numel() == 0:
                    self._slots.append(None)
                    continue
                self._slots.append(self._register(p, name, self._group_ids[gi], on_cuda,
                                                  host_ok))
        if self._stream is not None:
            by_param = {id(s.param): s for s in self._slots if s is not None}
            self._stream["uids"] = []
            self._stream["slots"] = []
            for k, unit in enumerate(self._stream["units"]):
                slots = [by_param[id(p)] for p in unit if id(p) in by_param]
                if not slots:
                    raise ValueError(f"zoff.torch.stream: unit {k} has no parameter this "
                                     "optimizer trains")
                self._stream["slots"].append(slots)
                self._stream["uids"].append(
                    self._rt.add_unit(f"unit.{k}", [s.pid for s in slots]))
            self._rt.set_schedule(self._stream["uids"])
        with _kwarg_errors(kw if nvme_path is not None else {}):
            self._rt.finalize()
        self._pull_scheduled_lr()
        if grad_hooks:
            self._install_hooks()

    def _pull_scheduled_lr(self):
        """With a "scheduler" in the config, zoff computes each group's lr per step (as
        DeepSpeed's engine does): param_groups[i]["lr"] shows it. Setting a group's lr by hand
        takes that group over from the scheduler (zoff_set_group)."""
        if not self._scheduled:
            return
        for gi, group in enumerate(self.param_groups):
            if self._pushed[gi].get("_taken_over"):
                continue
            g = self._rt.get_group(self._group_ids[gi])
            group["lr"] = g["lr"]
            hp = self._group_hparams(group)
            self._pushed[gi] = hp

    def _group_hparams(self, group):
        for flag in _UNSUPPORTED_FLAGS:
            if group.get(flag, False):
                raise ValueError(f"zoff.torch: {flag}=True is not supported")
        b1, b2 = group["betas"]
        return {"lr": _as_float(group["lr"]), "betas": (_as_float(b1), _as_float(b2)),
                "eps": float(group["eps"]), "weight_decay": float(group["weight_decay"]),
                "adamw": self._adamw, "bias_correction": True}

    def _register(self, p, name, gid, on_cuda, host_ok):
        s = _Slot()
        s.param, s.name, s.numel = p, name, p.numel()
        s.nbytes = p.numel() * p.element_size()
        s.param_view = s.grad_view = s.grad_buf = None
        s.handed = False
        zdt = _ZDTYPE[p.dtype]
        init = p.detach().reshape(-1).float().cpu().numpy()
        s.shape = p.shape
        if self._stream is not None and id(p) in self._stream["of"]:
            if on_cuda or not host_ok:
                raise ZoffError(_lib.ZOFF_EUNSUPPORTED, "ZOFF_EUNSUPPORTED",
                                "zoff.torch.stream: streaming needs CPU tensors on the sim "
                                "device (host-addressable slots) in this version")
            s.mode = "stream"
            s.dev_param = 0  # NULL: zoff keeps the 16-bit copy and uploads it into a slot
            s.dev_grad = None  # the gradient goes through zoff's buckets (the scratch buffer)
            s.grad_view = self._scratch_view[0][:s.nbytes].view(p.dtype)
            s.pid = self._rt.add_param_ptr(name, s.numel, zdt, 0, None, init_master=init,
                                           group=gid)
            s.version = p._version
            return s
        if on_cuda:
            if not p.is_contiguous():
                raise ValueError(f"zoff.torch: CUDA parameter {name} is not contiguous")
            s.mode = "cuda"
            s.dev_param, s.dev_grad = p.data_ptr(), None
        else:
            s.dev_param = self._rt.device_alloc(s.nbytes)
            s.dev_grad = None
            if host_ok:
                s.mode = "view"
                s.param_view = _host_view(s.dev_param, s.nbytes, p.dtype)
                s.grad_view = self._scratch_view[0][:s.nbytes].view(p.dtype)
                s.param_view.view(p.shape).copy_(p.detach())
            else:
                s.mode = "copy"
                src = p.detach().contiguous()
                self._rt.upload_raw(s.dev_param, src.data_ptr(), s.nbytes)
        s.pid = self._rt.add_param_ptr(name, s.numel, zdt, s.dev_param, s.dev_grad,
                                       init_master=init, group=gid)
        s.version = p._version
        return s

    # ---- hooks ------------------------------------------------------------------------------
    def _install_hooks(self):
        if not hasattr(torch.Tensor, "register_post_accumulate_grad_hook"):
            raise ZoffError(_lib.ZOFF_EUNSUPPORTED, "ZOFF_EUNSUPPORTED",
                            f"grad_hooks=True needs torch >= 2.1 "
                            f"(register_post_accumulate_grad_hook); this is {torch.__version__}")
        me = weakref.ref(self)
        for s in self._slots:
            if s is None:
                continue

            def hook(p, slot=s):
                opt = me()
                if opt is not None and opt._defer_hooks == 0:
                    if slot.handed and opt._accum > 1:
                        opt._end_micro_batch()
                    opt._hand_grad(slot)
                    p.grad = None  # zoff has it: the model holds no gradient copy

            self._hooks.append(s.param.register_post_accumulate_grad_hook(hook))

    @contextlib.contextmanager
    def no_grad_hooks(self):
        """Within this block the backward hooks do not hand gradients to zoff: use it for the
        micro-batches of gradient accumulation before the last one (the gradients are handed at
        the last backward, or by step())."""
        self._defer_hooks += 1
        try:
            yield
        finally:
            self._defer_hooks -= 1

    # ---- the step ---------------------------------------------------------------------------
    def _stream_of(self, slot):
        if slot.mode == "cuda":
            return torch.cuda.current_stream(slot.param.device).cuda_stream
        return None

    def _check_grad(self, slot):
        """Raises when slot's gradient cannot be handed to zoff (nothing is handed)."""
        g = slot.param.grad
        if slot.handed:
            raise ZoffError(_lib.ZOFF_ESTATE, "ZOFF_ESTATE",
                            f"zoff.torch: the gradient of {slot.name} was already handed to "
                            "zoff this step (a second backward before step()?); wrap the "
                            "earlier backward passes of gradient accumulation in "
                            "optimizer.no_grad_hooks()")
        if g.is_sparse or g.layout != torch.strided:
            raise TypeError(f"zoff.torch: sparse gradient of {slot.name} is not supported")
        if g.shape != slot.shape:
            raise ValueError(f"zoff.torch: the gradient of {slot.name} has shape "
                             f"{tuple(g.shape)}, the parameter {tuple(slot.shape)}")

    def _hand_grad(self, slot):
        p = slot.param
        g = p.grad
        if g is None:
            return
        self._check_grad(slot)
        zdt = _ZDTYPE[p.dtype]
        if slot.mode in ("view", "stream"):
            slot.grad_view.view(slot.shape).copy_(g)
            self._rt.grad_push(slot.pid, self._scratch, slot.numel, zdt, None)
        elif slot.mode == "cuda":
            src = g.detach()
            if src.dtype != p.dtype or not src.is_contiguous():
                src = src.to(p.dtype).contiguous()  # freed in stream order after the push
            self._rt.grad_push(slot.pid, src.data_ptr(), slot.numel, zdt, self._stream_of(slot))
        else:
            src = g.detach().to(p.dtype).contiguous()
            self._rt.upload_raw(self._scratch, src.data_ptr(), slot.nbytes)
            self._rt.grad_push(slot.pid, self._scratch, slot.numel, zdt, None)
        slot.handed = True

    def _end_micro_batch(self):
        """Gradient accumulation: a hook fired for a parameter already handed in this
        micro-batch, so the previous backward is complete: zoff sums it (zoff_step returns
        accumulating)."""
        res = self._rt.step()
        for s in self._slots:
            if s is not None:
                s.handed = False
        if not res.accumulating:
            raise ZoffError(_lib.ZOFF_ESTATE, "ZOFF_ESTATE",
                            f"zoff.torch: more than gradient_accumulation_steps = {self._accum} "
                            "backward passes before optimizer.step(); zoff updated at the "
                            f"{self._accum}-th (call optimizer.step() after every "
                            f"{self._accum} micro-batches)")
        self.last_step_result = res
        self._micro = res.micro_step

    def _sync_groups(self):
        for gi, group in enumerate(self.param_groups):
            hp = self._group_hparams(group)
            pushed = {k: v for k, v in self._pushed[gi].items() if k != "_taken_over"}
            if hp != pushed:
                self._rt.set_group(self._group_ids[gi], **hp)
                if self._scheduled:
                    hp = dict(hp, _taken_over=True)
                self._pushed[gi] = hp

    def _sync_changed_params(self):
        """Parameters modified in place by the user since the last step (e.g. a model
        load_state_dict after the optimizer was built) become the new master weights."""
        for s in self._slots:
            if s is not None and s.mode != "stream" and s.param._version != s.version:
                self._rt.set_state(s.pid, master=s.param.detach().reshape(-1).float().cpu()
                                   .numpy())
                s.version = s.param._version

    def _pull_params(self):
        """Waits for zoff's parameter uploads and brings them into the torch tensors."""
        cuda_devs = {s.param.device for s in self._slots if s is not None and s.mode == "cuda"}
        if cuda_devs:
            for dev in cuda_devs:
                self._rt.params_ready(torch.cuda.current_stream(dev).cuda_stream)
        else:
            self._rt.params_ready(None)
        for s in self._slots:
            if s is None or s.mode == "stream":  # streamed: the next fetch brings them
                continue
            p = s.param
            if s.mode == "view":
                p.data.copy_(s.param_view.view(p.shape))
            elif s.mode == "copy":
                dst = p.data if p.is_contiguous() else torch.empty_like(p.data).contiguous()
                self._rt.download_raw(dst.data_ptr(), s.dev_param, s.nbytes)
                if dst is not p.data:
                    p.data.copy_(dst)
            s.version = p._version

    @torch.no_grad()
    def step(self, closure=None):
        """Hands every gradient not yet handed (by a hook) to zoff, runs zoff_step, and copies
        the updated parameters into the tensors (CUDA: the current stream waits for them).
        Returns the closure's loss (or None). The zoff step result is in last_step_result."""
        self._alive()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync_changed_params()
        self._sync_groups()
        if self._stream is not None:
            self._stream_release_all()
        # A refused step changes nothing: every gradient is checked before any is handed, and
        # when something still fails, the gradients handed so far (also by the hooks during
        # backward) are discarded, so a retry after zero_grad() + backward starts clean.
        pending = [s for s in self._slots
                   if s is not None and not s.handed and s.param.grad is not None]
        try:
            for s in pending:
                self._check_grad(s)
            for s in pending:
                self._hand_grad(s)
            res = self._rt.step()
        except BaseException:
            self._discard_handed()
            raise
        for s in self._slots:
            if s is not None:
                s.handed = False
        self.last_step_result = res
        self._micro = 0
        if res.accumulating:
            self._micro = res.micro_step
            raise ZoffError(_lib.ZOFF_ESTATE, "ZOFF_ESTATE",
                            f"zoff.torch: optimizer.step() after {self._micro} of "
                            f"gradient_accumulation_steps = {self._accum} micro-batches: zoff "
                            "summed them and waits for the rest (one loss.backward() per "
                            "micro-batch, optimizer.step() after the last)")
        if res.params_nonfinite:
            self._warn_nonfinite(res)
        self._pull_params()
        self._pull_scheduled_lr()
        return loss

    # ---- streaming (zoff.torch.stream) ------------------------------------------------------
    def _restream(self, units, prefetch_depth):
        """Rebuilds the runtime with the parameters of `units` streamed (before any step)."""
        self._alive()
        if self._rt.step_count != 0:
            raise ZoffError(_lib.ZOFF_ESTATE, "ZOFF_ESTATE",
                            "zoff.torch.stream: call it before the first optimizer step")
        if self._stream is not None:
            raise ZoffError(_lib.ZOFF_ESTATE, "ZOFF_ESTATE",
                            "zoff.torch.stream: this optimizer already streams")
        of = {}
        for k, u in enumerate(units):
            for p in u:
                if id(p) in of:
                    raise ValueError(f"zoff.torch.stream: a parameter is in units {of[id(p)]} "
                                     f"and {k} (a parameter is in at most one unit)")
                of[id(p)] = k
        for h in self._hooks:
            h.remove()
        self._hooks = []
        for s in self._slots:
            if s is not None:
                s.param_view = s.grad_view = None
        self._rt.close()
        self._rt = None
        self._slots = []
        self._group_ids = []
        self._pushed = []
        self._stream = {"of": of, "units": [list(u) for u in units],
                        "prefetch_depth": 2 if prefetch_depth is None else int(prefetch_depth),
                        "refs": [0] * len(units), "seen": [set() for _ in units]}
        try:
            self._setup(*self._setup_args)
        except BaseException:
            self.close()
            raise

    def _stream_fetch(self, k):
        st = self._stream
        self._rt.fetch(st["uids"][k], None)
        st["refs"][k] += 1
        for s in st["slots"][k]:
            view = _host_view(self._rt.param_ptr(s.pid), s.nbytes, s.param.dtype)
            s.param.data = view.view(s.shape)

    def _stream_release(self, k):
        st = self._stream
        if st["refs"][k] == 0:
            return
        st["refs"][k] -= 1
        self._rt.release(st["uids"][k], None)
        if st["refs"][k] == 0:
            for s in st["slots"][k]:
                s.param.data = torch.empty(0, dtype=s.param.dtype)

    def _stream_release_all(self):
        st = self._stream
        for k in range(len(st["uids"])):
            while st["refs"][k] > 0:
                self._stream_release(k)
            st["seen"][k].clear()

    def _stream_grad_done(self, k, p):
        """Backward: once every trained param of unit k accumulated its gradient, the unit's
        slot is released."""
        st = self._stream
        st["seen"][k].add(id(p))
        if len(st["seen"][k]) == len(st["slots"][k]):
            st["seen"][k].clear()
            self._stream_release(k)

    def _discard_handed(self):
        """Makes zoff forget the gradients handed since the last step. With gradient
        accumulation (K > 1) nothing is discarded: zoff sums each micro-batch as it lands, and
        a gradient handed in this micro-batch stays part of the window."""
        if self._accum > 1:
            return
        if any(s is not None and s.handed for s in self._slots):
            try:
                self._rt.grads_discard()
            finally:
                for s in self._slots:
                    if s is not None:
                        s.handed = False

    def zero_grad(self, set_to_none=True):
        """torch.optim.Optimizer.zero_grad; gradients the hooks already handed to zoff this
        step (a backward abandoned before step()) are forgotten too."""
        self._discard_handed()
        super().zero_grad(set_to_none=set_to_none)

    def _warn_nonfinite(self, res):
        names = [s.name for s in self._slots
                 if s is not None and s.param.grad is not None
                 and not torch.isfinite(s.param.grad).all()]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        what = ("the step was skipped (no parameter changed)" if res.skipped else
                f"those parameters were left untouched, {res.params_updated} updated")
        warnings.warn(f"zoff.torch: non-finite gradient (inf/NaN) in {res.params_nonfinite} "
                      f"parameter(s) ({shown}): {what}", RuntimeWarning, stacklevel=3)

    # ---- information ------------------------------------------------------------------------
    @property
    def runtime(self):
        """The zoff.Runtime behind this optimizer (stats(), plan(), ...)."""
        self._alive()
        return self._rt

    @property
    def loss_scale(self):
        """The loss scale to multiply the loss by (1 unless fp16 dynamic scaling is on)."""
        return self.runtime.loss_scale

    def stats(self):
        """zoff's statistics of the last step and totals (a dict)."""
        return self.runtime.stats()

    def _alive(self):
        if self._rt is None:
            raise ZoffError(_lib.ZOFF_ESTATE, "ZOFF_ESTATE", "zoff.torch: optimizer was closed")

    def _one_rank(self, what):
        if self._nranks > 1:
            raise ZoffError(_lib.ZOFF_EUNSUPPORTED, "ZOFF_EUNSUPPORTED",
                            f"zoff.torch: {what} with {self._nranks} ranks is not built (each "
                            "rank holds 1/N of the state); use opt.save / opt.load (zoff's "
                            "collective checkpoints) instead")

    def close(self):
        """Removes the hooks and destroys the zoff runtime (frees its memory and swap files).
        The parameters keep their last values. Idempotent."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._stream is not None:
            for h in self._stream.get("hooks", []):
                h.remove()
            self._stream["hooks"] = []
        for s in self._slots:
            if s is not None:
                s.param_view = s.grad_view = None
        self._scratch_view = None
        if self._rt is not None:
            self._rt.close()
            self._rt = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- state in torch's form --------------------------------------------------------------
    def state_dict(self):
        """{'state': {index: {'step', 'exp_avg', 'exp_avg_sq'[, 'master']}}, 'param_groups':
        [...]} like torch.optim.AdamW. Tensors are new CPU tensors shaped like their parameter;
        exp_avg / exp_avg_sq are fp32 (zoff keeps them in fp32); 'master' (fp32 master weights)
        is present for fp16/bf16 parameters. Empty state before the first step, as in torch."""
        self._alive()
        self._one_rank("state_dict")
        groups, state, index = [], {}, 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(index, index + len(group["params"])))
            groups.append(packed)
            index += len(group["params"])
        for i, s in enumerate(self._slots):
            if s is None:
                continue
            step = self._rt.get_param_step(s.pid)
            if step > 0:  # torch has no state for a parameter never stepped
                m, v = self._rt.get_state(s.pid)
                entry = {"step": torch.tensor(float(step)),
                         "exp_avg": torch.from_numpy(m).view(s.param.shape),
                         "exp_avg_sq": torch.from_numpy(v).view(s.param.shape)}
                if s.param.dtype != torch.float32:
                    entry["master"] = torch.from_numpy(self._rt.get_master(s.pid)).view(
                        s.param.shape)
                state[i] = entry
        return {"state": state, "param_groups": groups}

    @torch.no_grad()
    def load_state_dict(self, state_dict):
        """Loads a state dict of this class or of torch.optim.AdamW/Adam (same parameter
        order). Hyperparameters of the groups are taken from it. The master weights become the
        saved 'master' when present, else the current parameter values (so load the model's
        weights first, as with any torch optimizer). Each parameter's 'step' becomes its step
        count (bias correction); a parameter without saved state starts from step 0 with zero
        moments, as in torch."""
        self._alive()
        self._one_rank("load_state_dict")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, sg in zip(self.param_groups, saved_groups):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
        id_map = {}
        index = 0
        for g, sg in zip(self.param_groups, saved_groups):
            for saved_id in sg["params"]:
                id_map[saved_id] = index
                index += 1
            for k, v in sg.items():
                if k not in ("params", "param_names"):
                    g[k] = v
            self._group_hparams(g)  # validates the loaded flags
        saved_state = state_dict["state"]
        steps = [int(_as_float(st["step"])) for st in saved_state.values() if "step" in st]
        step = max(steps) if steps else 0  # zoff's global count: steps taken

        def flat(t, s, key):
            a = t.detach().reshape(-1).float().cpu().numpy()
            if a.size != s.numel:
                raise ValueError(f"zoff.torch: state '{key}' of {s.name} has {a.size} values, "
                                 f"expected {s.numel}")
            return a

        by_index = {id_map[k]: v for k, v in saved_state.items() if k in id_map}
        if self._rt.step_count != step:
            self._rt.set_step(step)
        for i, s in enumerate(self._slots):
            if s is None:
                continue
            st = by_index.get(i)
            cur = s.param.detach().reshape(-1).float().cpu().numpy()
            if st is None:
                zeros = np.zeros(s.numel, dtype=np.float32)
                self._rt.set_state(s.pid, master=cur, exp_avg=zeros, exp_avg_sq=zeros)
                self._rt.set_param_step(s.pid, 0)
                continue
            master = flat(st["master"], s, "master") if "master" in st else cur
            self._rt.set_state(s.pid, master=master, exp_avg=flat(st["exp_avg"], s, "exp_avg"),
                               exp_avg_sq=flat(st["exp_avg_sq"], s, "exp_avg_sq"))
            self._rt.set_param_step(s.pid, int(_as_float(st["step"])) if "step" in st else step)
        self._sync_groups()
        self._pull_params()

    # ---- zoff's own checkpoints -------------------------------------------------------------
    def save(self, directory, extra=None):
        """zoff's fast checkpoint (optimizer.safetensors + manifest, atomically replaced; with
        several ranks each rank writes its slices to optimizer.rank<r>.safetensors):
        master weights, Adam state, step, loss scaler and group hyperparameters. `extra`: a small
        JSON-able dict stored with it."""
        self._alive()
        self._sync_changed_params()
        self._sync_groups()
        self._rt.save(directory, extra)

    @torch.no_grad()
    def load(self, directory):
        """Loads a checkpoint written by save() into zoff and the parameter tensors; the
        groups' lr/betas/eps/weight_decay become the checkpoint's. Returns the stored extra
        dict (or None)."""
        self._alive()
        extra = self._rt.load(directory)
        for gi, group in enumerate(self.param_groups):
            zg = self._rt.get_group(self._group_ids[gi])
            group["lr"], group["betas"] = zg["lr"], tuple(zg["betas"])
            group["eps"], group["weight_decay"] = zg["eps"], zg["weight_decay"]
            self._pushed[gi] = self._group_hparams(group)
        self._pull_params()
        return extra


# Device memory zoff may allocate for itself beyond the parameters' buffers (sim capacity).
_SIM_MARGIN_BYTES = 256 << 20
_SIM_MIN_BYTES = 1 << 30


def _collectives_for(cfg, on_cuda):
    """zoff.dist.TorchCollectives when torch.distributed is initialised with several ranks and
    the config does not say zoff.ranks 1 (this process alone), else None."""
    z = cfg.get("zoff")
    if isinstance(z, dict) and z.get("ranks", 0) == 1:
        return None
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return None
    from .dist import TorchCollectives

    return TorchCollectives(nccl_id=on_cuda)


def _device_config(cfg, kind, cuda_index, dev_bytes):
    """Fills zoff's own section of cfg ("zoff": {...}) with the device backend ("sim" for CPU
    tensors, "cuda" with the tensors' ordinal for CUDA tensors) and, for sim, a capacity that
    holds every parameter and gradient buffer; keys the user's config already sets are kept."""
    z = cfg.setdefault("zoff", {})
    if not isinstance(z, dict):
        raise ZoffError(_lib.ZOFF_ECONFIG, "ZOFF_ECONFIG", "zoff: expected a JSON object")
    z.setdefault("device", kind)
    if z["device"] == "cuda":
        z.setdefault("cuda_device", int(cuda_index or 0))
    if z["device"] == "sim" and "sim_gpu_bytes" not in z:
        z["sim_gpu_bytes"] = max(_SIM_MIN_BYTES, dev_bytes + dev_bytes // 4 + _SIM_MARGIN_BYTES)


class _kwarg_errors:
    """Rewrites a ZoffError raised while the keyword arguments are in effect so that it names
    the keyword argument (offload=, nvme_path=) instead of the JSON key the binding filled in,
    and the optimizer instead of "json string"."""

    def __init__(self, names):
        self.names = names

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None or not issubclass(et, ZoffError):
            return False
        msg = str(ev.message if hasattr(ev, "message") else ev)
        msg = msg.replace("json string: ", "zoff.torch: ")
        for key, arg in self.names.items():
            msg = msg.replace(key, f"{arg} (config key {key})")
        raise ZoffError(ev.status, ev.name, msg) from None


class AdamW(_ZoffOptimizer):
    """torch.optim.AdamW with the optimizer state offloaded by zoff (decoupled weight decay).

    AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *,
          offload="cpu" | "nvme", nvme_path=None, config=None, grad_hooks=False,
          state_format=None | "fp32" | "bf16" | "q8")

    config: a dict or a DeepSpeed-style JSON file path passed to zoff (e.g. gradient_clipping,
    fp16 loss scaling, aio settings); offload / nvme_path override its offload_optimizer keys,
    and the groups' hyperparameters override its optimizer.params. grad_hooks: hand each
    gradient to zoff as soon as backward has accumulated it. amsgrad, maximize, capturable and
    differentiable must stay False; foreach / fused are accepted and ignored (zoff always runs
    its fused CPU kernel).
    """

    _adamw = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, offload="cpu", nvme_path=None, config=None,
                 grad_hooks=False, state_format=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad=amsgrad,
                         maximize=maximize, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused, offload=offload,
                         nvme_path=nvme_path, config=config, grad_hooks=grad_hooks,
                         state_format=state_format)


class Adam(_ZoffOptimizer):
    """torch.optim.Adam with the optimizer state offloaded by zoff (L2 weight decay added to
    the gradient, default 0). Same options as zoff.torch.AdamW."""

    _adamw = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, offload="cpu", nvme_path=None, config=None,
                 grad_hooks=False, state_format=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad=amsgrad,
                         maximize=maximize, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused, offload=offload,
                         nvme_path=nvme_path, config=config, grad_hooks=grad_hooks,
                         state_format=state_format)


class Lion(_ZoffOptimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") with the state
    offloaded by zoff: p = p * (1 - lr * wd) - lr * sign(b1 * m + (1 - b1) * g);
    m = b2 * m + (1 - b2) * g. One moment per parameter (zoff keeps it as exp_avg).

    Lion(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, offload=..., nvme_path=None,
         config=None, grad_hooks=False, state_format=None)
    """

    _optim_type = "Lion"

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, offload="cpu",
                 nvme_path=None, config=None, grad_hooks=False, state_format=None):
        super().__init__(params, lr, betas, 0.0, weight_decay, offload=offload,
                         nvme_path=nvme_path, config=config, grad_hooks=grad_hooks,
                         state_format=state_format)


class Adagrad(_ZoffOptimizer):
    """torch.optim.Adagrad with the state offloaded by zoff: g = g + wd * p;
    sum = sum + g * g; p = p - clr * g / (sqrt(sum) + eps), clr = lr / (1 + (step - 1) *
    lr_decay). zoff keeps torch's "sum" as exp_avg_sq. lr_decay and initial_accumulator_value
    are one value for the whole optimizer (zoff runtime settings), not per group.

    Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
            eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None,
            offload=..., nvme_path=None, config=None, grad_hooks=False, state_format=None)
    """

    _optim_type = "Adagrad"

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None, offload="cpu", nvme_path=None, config=None,
                 grad_hooks=False, state_format=None):
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: "
                             f"{initial_accumulator_value}")
        self._optim_params = {"lr_decay": float(lr_decay),
                              "initial_accumulator_value": float(initial_accumulator_value)}
        super().__init__(params, lr, (0.9, 0.999), eps, weight_decay, maximize=maximize,
                         foreach=foreach, differentiable=differentiable, fused=fused,
                         offload=offload, nvme_path=nvme_path, config=config,
                         grad_hooks=grad_hooks, state_format=state_format)


# ---- parameter streaming ------------------------------------------------------------------------
class _StreamLinear(torch.autograd.Function):
    """y = x W^T + b that saves the weight *parameter* itself for backward (torch's own linear
    saves a transposed view, which would keep pointing at a slot that may hold another unit's
    weights by the time backward runs; the parameter's .data is re-pointed at the re-fetched
    slot by the backward pre-hook)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = gy.matmul(weight.to(gy.dtype))
        if ctx.needs_input_grad[1]:
            gw = gy.reshape(-1, gy.shape[-1]).t().mm(x.reshape(-1, x.shape[-1]).to(gy.dtype))
            gw = gw.to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.reshape(-1, gy.shape[-1]).sum(0).to(weight.dtype)
        return gx, gw, gb


def stream_linear(module):
    """Makes every torch.nn.Linear inside `module` compute through _StreamLinear (the same
    forward values; a backward that reads the weight through the parameter). zoff.torch.stream
    applies it to its units; apply it to a non-streamed copy of a model to compare the two
    bit for bit."""
    for m in module.modules():
        if isinstance(m, torch.nn.Linear) and not getattr(m, "_zoff_stream_linear", False):
            def fwd(x, m=m):
                return _StreamLinear.apply(x, m.weight, m.bias)
            m.forward = fwd
            m._zoff_stream_linear = True
    return module


class StreamHandle:
    """What zoff.torch.stream returns: the optimizer's units and a remove() for the hooks."""

    def __init__(self, optimizer, hooks):
        self._opt = weakref.ref(optimizer)
        self._hooks = hooks

    @property
    def units(self):
        """The zoff unit ids, in the order given."""
        opt = self._opt()
        return list(opt._stream["uids"]) if opt is not None and opt._stream else []

    def remove(self):
        """Removes the module and parameter hooks (the optimizer keeps streaming; a forward
        without the hooks would find empty parameters)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []


def stream(model, optimizer, units, prefetch_depth=None):
    """Streams the 16-bit weights of `units` (an iterable of torch.nn.Modules, e.g.
    model.blocks, in forward order) through zoff: each module becomes a zoff unit; its
    parameters are registered with zoff without device copies (their 16-bit values live in
    zoff's pinned host memory, written by the CPU Adam), fetched into one of prefetch_depth + 1
    slots by a forward pre-hook and released after the module's forward, fetched again by a
    backward pre-hook and released once the unit's gradients accumulated. Outside a fetch a
    streamed parameter's .data is an empty tensor. Parameters outside the units (embeddings,
    head) stay resident. Call it after creating the zoff.torch optimizer and before its first
    step; the model code does not change (nn.Linear inside the units computes through
    stream_linear). CPU tensors (sim device) only in this version; docs/python.md."""
    if not isinstance(optimizer, _ZoffOptimizer):
        raise TypeError("zoff.torch.stream: the optimizer must be a zoff.torch.AdamW or Adam")
    units = list(units)
    if not units:
        raise ValueError("zoff.torch.stream: no units")
    if not hasattr(torch.Tensor, "register_post_accumulate_grad_hook"):
        raise ZoffError(_lib.ZOFF_EUNSUPPORTED, "ZOFF_EUNSUPPORTED",
                        f"zoff.torch.stream needs torch >= 2.1; this is {torch.__version__}")
    params = [[p for p in m.parameters() if p.requires_grad] for m in units]
    optimizer._restream(params, prefetch_depth)
    me = weakref.ref(optimizer)
    hooks = []
    for k, m in enumerate(units):
        stream_linear(m)

        def pre(_mod, _args, k=k):
            me()._stream_fetch(k)

        def post(_mod, _args, _out, k=k):
            me()._stream_release(k)

        def bpre(_mod, _grad_out, k=k):
            me()._stream_fetch(k)

        hooks.append(m.register_forward_pre_hook(pre))
        hooks.append(m.register_forward_hook(post))
        hooks.append(m.register_full_backward_pre_hook(bpre))
        for p in params[k]:
            def done(q, k=k):
                me()._stream_grad_done(k, q)
            hooks.append(p.register_post_accumulate_grad_hook(done))
    for slots in optimizer._stream["slots"]:
        for s in slots:
            s.param.data = torch.empty(0, dtype=s.param.dtype)
    optimizer._stream["hooks"] = hooks
    return StreamHandle(optimizer, hooks)
