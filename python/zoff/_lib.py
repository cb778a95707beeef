"""Loading libzoff and declaring its C functions for ctypes.

This module owns: finding the shared library, the ctypes mirrors of the few structs of
include/zoff.h the binding needs (zoff_group_config, zoff_step_args, zoff_step_result,
zoff_link_stats, zoff_stats, zoff_plan_report, zoff_collectives), the argument/return types of
every function used, and ZoffError (a zoff status raised as a Python exception with zoff_last_error's text).

Where the library comes from, first match wins:
  1. the file named by the environment variable ZOFF_LIBRARY (an error if it cannot be loaded);
  2. the copy bundled into the package by `pip install ./python` (zoff/lib/libzoff.so);
  3. a build tree of the repository this package sits in: build/libzoff.so, then the newest
     build*/libzoff.so (sanitizer builds skipped);
  4. the system's library path (ctypes.util.find_library("zoff")).

The library is loaded once, on first use, and is thread-safe to share; a zoff runtime itself
is used by one thread at a time (the binding adds a lock per runtime, see runtime.py).
"""

import ctypes
import ctypes.util
import os
import threading
from pathlib import Path

# ---- status codes (the X-macro list of include/zoff.h) ---------------------------------------
ZOFF_OK = 0
ZOFF_EINTERNAL = -1000
ZOFF_EINVAL = -1001
ZOFF_ECONFIG = -1002
ZOFF_ESTATE = -1003
ZOFF_EDEVMEM = -1004
ZOFF_EDEVICE = -1005
ZOFF_EUNSUPPORTED = -1006
ZOFF_ECORRUPT = -1007
ZOFF_ENOFIT = -1008
ZOFF_ENOTFOUND = -1009
ZOFF_EFORMAT = -1010
ZOFF_EMISMATCH = -1011
ZOFF_ESHORTIO = -1012
ZOFF_EINTERRUPTED = -1013
ZOFF_EDIVERGED = -1014

# ---- enums -------------------------------------------------------------------------------------
DTYPE_F32 = 0
DTYPE_F16 = 1
DTYPE_BF16 = 2

# The bytes the binding reserves for an opaque zoff_config (it never reads its fields; the
# library writes sizeof(zoff_config), checked against this after every fill).
CONFIG_BUFFER_BYTES = 64 * 1024

# The user JSON stored in a checkpoint manifest is at most 4 KiB (zoff_save_with).
USER_JSON_MAX_BYTES = 4096


class ZoffError(RuntimeError):
    """A zoff call failed.

    Attributes: status (the negative zoff_status: a zoff code or -errno), name (its symbolic
    name, e.g. "ZOFF_ECONFIG" or "ENOSPC"), message (zoff_last_error's detailed text, or the
    binding's own text when the failure was detected in Python).
    """

    def __init__(self, status, name, message):
        self.status = int(status)
        self.name = str(name)
        self.message = str(message)
        super().__init__(f"{self.name} ({self.status}): {self.message}")


# ---- struct mirrors ----------------------------------------------------------------------------
class GroupConfig(ctypes.Structure):
    """zoff_group_config."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("lr", ctypes.c_float),
        ("beta1", ctypes.c_float),
        ("beta2", ctypes.c_float),
        ("eps", ctypes.c_float),
        ("weight_decay", ctypes.c_float),
        ("adamw_mode", ctypes.c_int),
        ("bias_correction", ctypes.c_int),
    ]


STEP_ZERO_MISSING_GRADS = 0x1  # zoff_step_args.flags


class StepArgs(ctypes.Structure):
    """zoff_step_args."""

    _fields_ = [("struct_size", ctypes.c_size_t), ("flags", ctypes.c_int)]


class StepResultC(ctypes.Structure):
    """zoff_step_result."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("step", ctypes.c_int64),
        ("skipped", ctypes.c_int),
        ("overflow", ctypes.c_int),
        ("grad_norm", ctypes.c_double),
        ("clip_coef", ctypes.c_double),
        ("loss_scale", ctypes.c_float),
        ("step_ms", ctypes.c_double),
        ("adam_ms", ctypes.c_double),
        ("wait_grads_ms", ctypes.c_double),
        ("nvme_wait_ms", ctypes.c_double),
        ("params_updated", ctypes.c_int),
        ("params_without_grad", ctypes.c_int),
        ("params_nonfinite", ctypes.c_int),
        ("accumulating", ctypes.c_int),
        ("micro_step", ctypes.c_int),
    ]


class LinkStats(ctypes.Structure):
    """zoff_link_stats."""

    _fields_ = [
        ("bytes", ctypes.c_uint64),
        ("busy_ms", ctypes.c_double),
        ("gbps", ctypes.c_double),
    ]


class StatsC(ctypes.Structure):
    """zoff_stats."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("d2h", LinkStats),
        ("h2d", LinkStats),
        ("nvme_read", LinkStats),
        ("nvme_write", LinkStats),
        ("adam_ms", ctypes.c_double),
        ("adam_gbps", ctypes.c_double),
        ("step_ms", ctypes.c_double),
        ("trainer_wait_ms", ctypes.c_double),
        ("overlap_ratio", ctypes.c_double),
        ("steps", ctypes.c_int64),
        ("skipped_steps", ctypes.c_int64),
        ("total_d2h_bytes", ctypes.c_uint64),
        ("total_h2d_bytes", ctypes.c_uint64),
        ("total_nvme_read_bytes", ctypes.c_uint64),
        ("total_nvme_write_bytes", ctypes.c_uint64),
        ("device_bytes", ctypes.c_uint64),
        ("pinned_bytes", ctypes.c_uint64),
        ("pageable_bytes", ctypes.c_uint64),
        ("nvme_bytes", ctypes.c_uint64),
        ("pinned_fallback", ctypes.c_int),
        ("aio_fallback", ctypes.c_int),
        ("odirect", ctypes.c_int),
        ("device_name", ctypes.c_char * 64),
        ("cpu_isa", ctypes.c_char * 16),
        ("nonfinite_steps", ctypes.c_int64),
        ("nonfinite_grads", ctypes.c_int64),
        ("missing_grads", ctypes.c_int64),
        ("fetches", ctypes.c_uint64),
        ("fetch_hits", ctypes.c_uint64),
        ("fetch_misses", ctypes.c_uint64),
        ("fetch_out_of_order", ctypes.c_uint64),
        ("prefetches", ctypes.c_uint64),
        ("stream_h2d_bytes", ctypes.c_uint64),
        ("fetch_wait_ms", ctypes.c_double),
        ("slot_bytes", ctypes.c_uint64),
        ("nslots", ctypes.c_int),
        ("device_peak_bytes", ctypes.c_uint64),
        ("bucket_bytes", ctypes.c_uint64),
        ("gpu_bytes_per_param", ctypes.c_double),
        ("bucket_flushes", ctypes.c_uint64),
        ("micro_steps", ctypes.c_int64),
    ]


class PlanReportC(ctypes.Structure):
    """zoff_plan_report."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("gpu_bytes", ctypes.c_uint64),
        ("pinned_bytes", ctypes.c_uint64),
        ("pageable_bytes", ctypes.c_uint64),
        ("nvme_bytes", ctypes.c_uint64),
        ("gpu_available", ctypes.c_uint64),
        ("host_available", ctypes.c_uint64),
        ("nvme_available", ctypes.c_uint64),
        ("no_offload_bytes", ctypes.c_uint64),
        ("fits", ctypes.c_int),
        ("advice", ctypes.c_char * 512),
        ("streamed", ctypes.c_int),
        ("layers", ctypes.c_int),
        ("slot_bytes", ctypes.c_uint64),
        ("nslots", ctypes.c_int),
        ("activation_bytes", ctypes.c_uint64),
        ("h2d_bytes_per_step", ctypes.c_uint64),
        ("d2h_bytes_per_step", ctypes.c_uint64),
        ("min_tokens_per_microbatch", ctypes.c_uint64),
        ("bucket_bytes", ctypes.c_uint64),
        ("gpu_bytes_per_param", ctypes.c_double),
        ("host_bytes_per_param", ctypes.c_double),
    ]


# zoff_collectives: the transport of the host collectives, supplied by the caller (zoff.dist).
ALL_GATHER_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_size_t)
NCCL_UNIQUE_ID_BYTES = 128


class Collectives(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("rank", ctypes.c_int),
        ("size", ctypes.c_int),
        ("local_rank", ctypes.c_int),
        ("local_size", ctypes.c_int),
        ("user", ctypes.c_void_p),
        ("all_gather", ALL_GATHER_FN),
        ("nccl_unique_id", ctypes.c_ubyte * NCCL_UNIQUE_ID_BYTES),
        ("have_nccl_unique_id", ctypes.c_int),
    ]


# ---- function table ----------------------------------------------------------------------------
_p = ctypes.c_void_p
_st = ctypes.c_int  # zoff_status
_sz = ctypes.c_size_t
_cs = ctypes.c_char_p

# name: (restype, argtypes). Every one of these must exist in the library (a missing one makes
# the candidate fail to load, naming the symbol).
_FUNCS = {
    "zoff_version": (_cs, []),
    "zoff_version_number": (ctypes.c_int, []),
    "zoff_strerror": (_cs, [_st]),
    "zoff_status_name": (_cs, [_st]),
    "zoff_dtype_size": (_sz, [ctypes.c_int]),
    "zoff_group_config_default": (_st, [ctypes.POINTER(GroupConfig)]),
    "zoff_config_default": (_st, [_p]),
    "zoff_config_from_json": (_st, [_p, _cs]),
    "zoff_config_from_json_string": (_st, [_p, _cs]),
    "zoff_create": (_st, [_p, ctypes.POINTER(_p)]),
    "zoff_create_from_json": (_st, [_cs, ctypes.POINTER(_p)]),
    "zoff_use_collectives": (_st, [ctypes.POINTER(Collectives)]),
    "zoff_nccl_unique_id": (_st, [_p]),
    "zoff_destroy": (None, [_p]),
    "zoff_last_error": (_cs, [_p]),
    "zoff_add_group": (_st, [_p, ctypes.POINTER(GroupConfig), ctypes.POINTER(ctypes.c_int)]),
    "zoff_set_group": (_st, [_p, ctypes.c_int, ctypes.POINTER(GroupConfig)]),
    "zoff_get_group": (_st, [_p, ctypes.c_int, ctypes.POINTER(GroupConfig)]),
    "zoff_add_param": (
        _st,
        [_p, _cs, _sz, ctypes.c_int, _p, _p, _p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)],
    ),
    "zoff_finalize": (_st, [_p]),
    "zoff_grad_ready": (_st, [_p, ctypes.c_int, _p]),
    "zoff_grad_push": (_st, [_p, ctypes.c_int, _p, _sz, ctypes.c_int, _p]),
    "zoff_plan_max_params": (_st, [_p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64), _p]),
    "zoff_step": (_st, [_p, ctypes.POINTER(StepArgs), ctypes.POINTER(StepResultC)]),
    "zoff_params_ready": (_st, [_p, _p]),
    "zoff_get_loss_scale": (_st, [_p, ctypes.POINTER(ctypes.c_float)]),
    "zoff_get_master": (_st, [_p, ctypes.c_int, _p]),
    "zoff_get_state": (_st, [_p, ctypes.c_int, _p, _p]),
    "zoff_set_state": (_st, [_p, ctypes.c_int, _p, _p, _p]),
    "zoff_param_count": (_st, [_p, ctypes.POINTER(ctypes.c_int)]),
    "zoff_get_step": (_st, [_p, ctypes.POINTER(ctypes.c_int64)]),
    "zoff_set_step": (_st, [_p, ctypes.c_int64]),
    "zoff_get_param_step": (_st, [_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int64)]),
    "zoff_set_param_step": (_st, [_p, ctypes.c_int, ctypes.c_int64]),
    "zoff_grads_discard": (_st, [_p]),
    "zoff_save": (_st, [_p, _cs]),
    "zoff_load": (_st, [_p, _cs]),
    "zoff_save_with": (_st, [_p, _cs, _cs]),
    "zoff_load_with": (_st, [_p, _cs, _p, _sz]),
    "zoff_get_stats": (_st, [_p, ctypes.POINTER(StatsC)]),
    "zoff_plan": (_st, [_p, _sz, ctypes.POINTER(PlanReportC)]),
    "zoff_device_alloc": (_st, [_p, _sz, ctypes.POINTER(_p)]),
    "zoff_device_free": (None, [_p, _p]),
    "zoff_device_upload": (_st, [_p, _p, _p, _sz, _p]),
    "zoff_device_download": (_st, [_p, _p, _p, _sz, _p]),
    "zoff_device_host_accessible": (ctypes.c_int, [_p]),
    "zoff_stream_create": (_st, [_p, ctypes.POINTER(_p)]),
    "zoff_stream_destroy": (None, [_p, _p]),
    "zoff_stream_synchronize": (_st, [_p, _p]),
    "zoff_add_unit": (_st, [_p, _cs, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
                            ctypes.POINTER(ctypes.c_int)]),
    "zoff_set_schedule": (_st, [_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
                                ctypes.POINTER(ctypes.c_int), ctypes.c_int]),
    "zoff_fetch": (_st, [_p, ctypes.c_int, _p]),
    "zoff_release": (_st, [_p, ctypes.c_int, _p]),
    "zoff_param_ptr": (_st, [_p, ctypes.c_int, ctypes.POINTER(_p)]),
}

_lock = threading.Lock()
_lib = None
_lib_path = None


def _repo_root():
    """The repository this package sits in (python/zoff/_lib.py -> repo), or None."""
    root = Path(__file__).resolve().parent.parent.parent
    if (root / "include" / "zoff.h").is_file() and (root / "CMakeLists.txt").is_file():
        return root
    return None


def _sanitized(build_dir):
    """True for a build tree configured with ZOFF_SANITIZE=ON: its ASan library would abort an
    interpreter that did not preload the ASan runtime, so it is only used through
    ZOFF_LIBRARY."""
    try:
        cache = (build_dir / "CMakeCache.txt").read_text(errors="replace")
    except OSError:
        return False
    return "ZOFF_SANITIZE:BOOL=ON" in cache


def candidates():
    """The library paths tried, in order (ZOFF_LIBRARY, bundled, build trees, system)."""
    env = os.environ.get("ZOFF_LIBRARY", "")
    if env:
        return [os.path.abspath(env) if os.sep in env else env]
    out = []
    bundled = Path(__file__).resolve().parent / "lib" / "libzoff.so"
    if bundled.is_file():
        out.append(str(bundled))
    root = _repo_root()
    if root is not None:
        default = root / "build" / "libzoff.so"
        if default.is_file() and not _sanitized(default.parent):
            out.append(str(default))
        others = [p for p in root.glob("build*/libzoff.so")
                  if p != default and p.is_file() and not _sanitized(p.parent)]
        others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        out.extend(str(p) for p in others)
    system = ctypes.util.find_library("zoff")
    if system:
        out.append(system)
    return out


def _declare(lib):
    for name, (restype, argtypes) in _FUNCS.items():
        fn = getattr(lib, name)  # AttributeError names the missing symbol
        fn.restype = restype
        fn.argtypes = argtypes


def lib():
    """Returns the loaded library (loads it on first call). Raises ZoffError when none loads."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for path in candidates():
            try:
                handle = ctypes.CDLL(path)
                _declare(handle)
            except (OSError, AttributeError) as e:
                tried.append(f"{path}: {e}")
                if os.environ.get("ZOFF_LIBRARY"):
                    break
                continue
            _lib, _lib_path = handle, path
            return _lib
        where = "; ".join(tried) if tried else "no candidate found"
        raise ZoffError(
            ZOFF_ENOTFOUND,
            "ZOFF_ENOTFOUND",
            "cannot load libzoff (" + where + "). Set ZOFF_LIBRARY=/path/to/libzoff.so, "
            "install the package with `pip install ./python`, or build the library with "
            "`cmake -S . -B build && cmake --build build --target zoff_shared`",
        )


def library_path():
    """The path of the loaded library (loads it if needed)."""
    lib()
    return _lib_path


def status_name(st):
    return lib().zoff_status_name(int(st)).decode("utf-8", "replace")


def strerror(st):
    return lib().zoff_strerror(int(st)).decode("utf-8", "replace")


def last_error(rt_handle=None):
    msg = lib().zoff_last_error(rt_handle)
    return msg.decode("utf-8", "replace") if msg else ""


def error_for(st, rt_handle=None):
    """A ZoffError for status `st` carrying zoff_last_error(rt_handle) (or strerror)."""
    msg = last_error(rt_handle) or strerror(st)
    return ZoffError(st, status_name(st), msg)


def check(st, rt_handle=None):
    """Raises ZoffError when `st` is negative; returns st otherwise."""
    if st < 0:
        raise error_for(st, rt_handle)
    return st
