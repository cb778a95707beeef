"""zoff.dist: several ranks without MPI — zoff's host collectives carried by torch.distributed.

This module owns TorchCollectives: the zoff_collectives table (include/zoff.h) whose one
function, all_gather, zoff builds every collective on, implemented with torch.distributed on a
gloo process group (the default group when it is gloo, else a gloo group created for zoff).
zoff adds the gathered contributions itself in rank order (fp32), so the results are the same
bits as under mpirun. Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) neither MPI
nor, without GPUs, NCCL can bootstrap; torch.distributed can.

With CUDA parameters, rank 0 asks zoff for an NCCL unique id (zoff_nccl_unique_id) and
torch.distributed.broadcast_object_list hands it to every rank; zoff then reduces its gradient
buckets with NCCL on the device (that path compiles but has never run on a GPU in this project).

zoff.torch uses it by itself when torch.distributed is initialised with several ranks; any
Runtime can be created under it:

    with zoff.dist.TorchCollectives() as coll:   # zoff_use_collectives for the runtimes created
        rt = zoff.Runtime(cfg)                   # in this block; keep `coll` alive as long as rt

Thread safety: zoff calls all_gather on the thread that calls its collective functions
(zoff_create, zoff_finalize, zoff_grad_push, zoff_step, zoff_save, zoff_load); it takes the GIL.
"""

import ctypes
import os
import sys
import traceback

from . import _lib


class TorchCollectives:
    """zoff's host collectives over torch.distributed (gloo). `nccl_id`: hand an NCCL unique id
    from rank 0 to every rank (CUDA parameters)."""

    def __init__(self, group=None, nccl_id=False):
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("zoff.dist: torch.distributed is not initialised "
                               "(dist.init_process_group)")
        self._torch = torch
        self._dist = dist
        if group is None and dist.get_backend() != "gloo":
            group = dist.new_group(backend="gloo")  # host tensors: a gloo group for zoff
        self._group = group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        self._fn = _lib.ALL_GATHER_FN(self._all_gather)  # kept alive with this object
        c = _lib.Collectives()
        c.struct_size = ctypes.sizeof(c)
        c.rank = self.rank
        c.size = self.size
        c.local_rank = int(os.environ.get("LOCAL_RANK", -1))
        c.local_size = int(os.environ.get("LOCAL_WORLD_SIZE", 0))
        c.all_gather = self._fn
        if nccl_id:
            ident = [None]
            if self.rank == 0:
                buf = (ctypes.c_ubyte * _lib.NCCL_UNIQUE_ID_BYTES)()
                if _lib.lib().zoff_nccl_unique_id(buf) == 0:
                    ident[0] = bytes(buf)
            dist.broadcast_object_list(ident, src=dist.get_global_rank(group, 0)
                                       if group is not None else 0, group=group)
            if ident[0] is not None:
                ctypes.memmove(c.nccl_unique_id, ident[0], _lib.NCCL_UNIQUE_ID_BYTES)
                c.have_nccl_unique_id = 1
        self._c = c

    def _all_gather(self, user, send, recv, nbytes):
        try:
            torch, n = self._torch, int(nbytes)
            src = torch.frombuffer((ctypes.c_char * n).from_address(send), dtype=torch.uint8)
            dst = torch.frombuffer((ctypes.c_char * (n * self.size)).from_address(recv),
                                   dtype=torch.uint8)
            outs = [dst[r * n:(r + 1) * n] for r in range(self.size)]
            self._dist.all_gather(outs, src.clone(), group=self._group)
            return 0
        except BaseException:  # noqa: BLE001 - reported to zoff as a failed collective
            traceback.print_exc(file=sys.stderr)
            return -1

    def use(self):
        """zoff_use_collectives(this table) for the runtimes created from now on."""
        _lib.check(_lib.lib().zoff_use_collectives(ctypes.byref(self._c)), None)

    @staticmethod
    def clear():
        """zoff_use_collectives(NULL): back to the launcher's environment."""
        _lib.check(_lib.lib().zoff_use_collectives(None), None)

    def __enter__(self):
        self.use()
        return self

    def __exit__(self, *exc):
        self.clear()
        return False
