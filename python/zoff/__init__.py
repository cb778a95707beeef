"""zoff — Python binding of the zoff ZeRO-Offload runtime (libzoff) and a drop-in PyTorch
optimizer (zoff.torch.AdamW / zoff.torch.Adam, imported on demand so that numpy users need no
torch).

This file owns the package's public names: Runtime, plan, ZoffError, StepResult, PlanReport,
library_version(), library_path().
"""

from ._lib import ZoffError
from .runtime import PlanReport, Runtime, StepResult, group_defaults, plan

__version__ = "0.1.0"

__all__ = [
    "Runtime",
    "plan",
    "ZoffError",
    "StepResult",
    "PlanReport",
    "group_defaults",
    "library_version",
    "library_path",
]


def library_version():
    """The version string of the loaded libzoff (e.g. "0.1.0")."""
    from . import _lib

    return _lib.lib().zoff_version().decode()


def library_path():
    """The file the binding loaded libzoff from."""
    from . import _lib

    return _lib.library_path()
