#!/usr/bin/env python3
"""ds_schema.py -- prints DeepSpeed's training-config schema as "path<TAB>type" lines, read from
DeepSpeed itself (its pydantic config models and the key constants of its dict-style sections).

zoff does not depend on DeepSpeed: this script is run by hand in a scratch virtual environment
(docs/config.md, "Where the key list comes from") and its output is committed as
runtime/ds_schema.tsv, which runtime/ds_keys.c is checked against by tests/test_ds_config.c.

    python3 -m venv --system-site-packages /tmp/dsvenv
    DS_ACCELERATOR=cpu DS_BUILD_OPS=0 /tmp/dsvenv/bin/pip install deepspeed
    DS_ACCELERATOR=cpu /tmp/dsvenv/bin/python scripts/ds_schema.py > runtime/ds_schema.tsv

type: bool, int, number, string, list, object (a section whose keys follow), any.
"""
import importlib
import os
import sys
import typing

os.environ.setdefault("DS_ACCELERATOR", "cpu")
import deepspeed  # noqa: E402
from pydantic import BaseModel  # noqa: E402

out = {}


def put(path, typ):
    out.setdefault(path, typ)


def ann_type(ann):
    """Maps a pydantic annotation to bool/int/number/string/list/object/any."""
    origin = typing.get_origin(ann)
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if origin is typing.Union or str(origin) == "types.UnionType":
        kinds = {ann_type(a) for a in args}
        if len(kinds) == 1:
            return kinds.pop()
        if kinds <= {"int", "number"}:
            return "number"
        return "any"
    if origin is typing.Literal:
        vals = typing.get_args(ann)
        if all(isinstance(v, bool) for v in vals):
            return "bool"
        if all(isinstance(v, str) for v in vals):
            return "string"
        return "any"
    if origin in (list, tuple, set) or ann in (list, tuple, set):
        return "list"
    if origin is dict or ann is dict:
        return "object"
    if isinstance(ann, type):
        if issubclass(ann, bool):
            return "bool"
        if issubclass(ann, int):
            return "int"
        if issubclass(ann, float):
            return "number"
        if issubclass(ann, str):
            return "string"
        if issubclass(ann, BaseModel):
            return "model"
    return "any"


def model(prefix, cls):
    put(prefix, "object")
    for name, f in cls.model_fields.items():
        keys = [f.alias or name]
        if f.alias and f.alias != name:
            keys.append(name)  # DeepSpeed models accept field names too (populate_by_name)
        ann = f.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is None and len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            sub = args[0]
        for k in keys:
            if sub is not None:
                model(f"{prefix}.{k}", sub)
            else:
                put(f"{prefix}.{k}", ann_type(ann))


def consts(prefix, module, names):
    mod = importlib.import_module(module)
    put(prefix, "object")
    for n in names:
        put(f"{prefix}.{getattr(mod, n)}", "any")


# Pydantic sections.
from deepspeed.runtime.zero.config import DeepSpeedZeroConfig  # noqa: E402
from deepspeed.runtime.precision_config import DeepSpeedFP16Config, DeepSpeedBF16Config  # noqa: E402
from deepspeed.monitor.config import TensorBoardConfig, WandbConfig, CSVConfig, CometConfig  # noqa: E402
from deepspeed.comm.config import CommsLoggerConfig  # noqa: E402
from deepspeed.compile.config import CompileConfig  # noqa: E402

model("zero_optimization", DeepSpeedZeroConfig)
model("fp16", DeepSpeedFP16Config)
model("bf16", DeepSpeedBF16Config)
model("bfloat16", DeepSpeedBF16Config)
model("tensorboard", TensorBoardConfig)
model("wandb", WandbConfig)
model("csv_monitor", CSVConfig)
model("comet", CometConfig)
model("comms_logger", CommsLoggerConfig)
model("compile", CompileConfig)

# Dict-style sections: their key constants.
consts("activation_checkpointing", "deepspeed.runtime.activation_checkpointing.config",
       [n for n in dir(importlib.import_module("deepspeed.runtime.activation_checkpointing.config"))
        if n.startswith("ACT_CHKPT_") and not n.endswith(("_DEFAULT", "FORMAT")) and n != "ACT_CHKPT"])
pc = importlib.import_module("deepspeed.profiling.constants")
consts("flops_profiler", "deepspeed.profiling.constants",
       [n for n in dir(pc) if n.startswith("FLOPS_PROFILER_") and not n.endswith("_DEFAULT")
        and n not in ("FLOPS_PROFILER", "FLOPS_PROFILER_FORMAT")])
sc = importlib.import_module("deepspeed.runtime.swap_tensor.constants")
consts("aio", "deepspeed.runtime.swap_tensor.constants",
       [n for n in dir(sc) if n.startswith("AIO_") and not n.endswith(("_DEFAULT", "FORMAT")) and n != "AIO"])
c = importlib.import_module("deepspeed.runtime.constants")
put("optimizer", "object")
put("optimizer.type", "string")
put("optimizer.params", "object")
put(f"optimizer.{c.LEGACY_FUSION}", "bool")
put("scheduler", "object")
put("scheduler.type", "string")
put("scheduler.params", "object")
for k in (c.CHECKPOINT_TAG_VALIDATION, c.LOAD_UNIVERSAL_CHECKPOINT, c.USE_NODE_LOCAL_STORAGE_CHECKPOINT,
          c.CHECKPOINT_PARALLEL_WRITE):
    put(f"{c.CHECKPOINT}.{k}", "any")
put(c.CHECKPOINT, "object")
put(c.DATA_TYPES, "object")
for n in ("GRAD_ACCUM_DTYPE", "PARAM_DTYPE", "BUFFER_DTYPE", "KEEP_IN_FP32_MODULES"):
    if hasattr(c, n):
        put(f"{c.DATA_TYPES}.{getattr(c, n)}", "any")
put(c.TORCH_AUTOCAST, "object")
for n in ("TORCH_AUTOCAST_ENABLED", "TORCH_AUTOCAST_DTYPE", "TORCH_AUTOCAST_LOWER_PRECISION_SAFE_MODULES"):
    put(f"{c.TORCH_AUTOCAST}.{getattr(c, n)}", "any")

# Top-level scalars read with get_scalar_param (runtime/constants.py).
for n in ("TRAIN_BATCH_SIZE", "TRAIN_MICRO_BATCH_SIZE_PER_GPU", "GRADIENT_ACCUMULATION_STEPS"):
    put(getattr(c, n), "int")
for n in ("STEPS_PER_PRINT",):
    put(getattr(c, n), "int")
for n in ("GRADIENT_CLIPPING", "GRADIENT_PREDIVIDE_FACTOR"):
    put(getattr(c, n), "number")
for n in ("MANAGED_GRADIENT_ACCUMULATION", "DISABLE_ALLGATHER", "PRESCALE_GRADIENTS", "DUMP_STATE",
          "DISABLE_PYTHON_GC", "ZERO_ALLOW_UNTESTED_OPTIMIZER", "ZERO_FORCE_DS_CPU_OPTIMIZER",
          "WALL_CLOCK_BREAKDOWN", "MEMORY_BREAKDOWN", "USE_DATA_BEFORE_EXPERT_PARALLEL",
          "DATALOADER_DROP_LAST", "SPARSE_GRADIENTS"):
    if hasattr(c, n):
        put(getattr(c, n), "bool")
for n in ("COMMUNICATION_DATA_TYPE", "SEQ_PARALLEL_COMMUNICATION_DATA_TYPE", "GRADIENT_ALLREDUCE_OP",
          "LOG_LEVEL"):
    if hasattr(c, n):
        put(getattr(c, n), "string")
# Sections zoff treats as opaque (accepted whole, one warning): their keys are not listed.
for n in ("amp", "elasticity", "pipeline", "curriculum_learning", "data_efficiency", "sparse_attention",
          "autotuning", "hybrid_engine", "tensor_parallel", "expert_parallel", "weight_quantization",
          "quantize_training", "eigenvalue", "progressive_layer_drop", "compression_training",
          "nebula", "datastates", "timers", "zenflow", "sequence_parallel_size"):
    put(n, "opaque")

print(f"# DeepSpeed {deepspeed.__version__} training-config schema, from scripts/ds_schema.py")
for k in sorted(out):
    print(f"{k}\t{out[k]}")
