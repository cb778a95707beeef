/*
 * ds_keys.c — the one table of DeepSpeed config keys that zoff accepts but does not act on, and
 * what zoff does instead. runtime/config.c looks a key up here when its own key tables (the keys
 * that take effect) do not have it: a key found here is type-checked and accepted with one
 * warning line naming it and the note; a key in neither place is an error.
 *
 * The keys are DeepSpeed's training-config schema (runtime/ds_schema.tsv, printed from
 * DeepSpeed's own pydantic models and key constants by scripts/ds_schema.py; tests/
 * test_ds_config.c checks that every schema key is either effective or listed here). To make a
 * key effective: add it to config.c's table of its section and delete its line here.
 * Owned: static data only; thread-safe.
 */
#include <string.h>

#include "runtime/config.h"

#define ZOFF_NOTE_STAGE                                                                            \
    "stage 3 (parameter partitioning) is not built: each GPU keeps all its 16-bit parameters and " \
    "only the optimizer state is offloaded, as in stage 2 (several ranks refuse stage 3)"
#define ZOFF_NOTE_PARAM                                                                            \
    "streamed 16-bit weights always live in pinned host memory (offload_param.device \"cpu\")"
#define ZOFF_NOTE_STAGE3                                                                           \
    "a ZeRO-3 parameter-partitioning knob: zoff keeps the 16-bit parameters resident on the GPU"
#define ZOFF_NOTE_MULTI                                                                            \
    "a multi-rank communication setting: zoff runs one rank and communicates nothing"
#define ZOFF_NOTE_BUCKET                                                                           \
    "gradient accumulation tuning: zoff copies each gradient into its buckets when the trainer "   \
    "declares it final and sums gradient_accumulation_steps micro-batches in fp32 on the host"
#define ZOFF_NOTE_CONTIG                                                                           \
    "zoff's gradients always land in one contiguous pinned host buffer (zoff_grad_push: through "  \
    "its device gradient buckets)"
#define ZOFF_NOTE_SUBGROUP "zoff.partition_numel sets the optimizer-state partition (swap unit)"
#define ZOFF_NOTE_OFFLOAD_TUNING                                                                   \
    "zoff always preallocates the swap at zoff_finalize, pipelines reads and writes, and runs its" \
    " own CPU Adam threads (zoff.cpu_threads)"
#define ZOFF_NOTE_LEGACY_OFFLOAD                                                                   \
    "a pre-0.5 DeepSpeed spelling: use offload_optimizer.device; zoff always offloads the "        \
    "optimizer state"
#define ZOFF_NOTE_ENGINE                                                                           \
    "a DeepSpeed engine feature outside the optimizer offload; zoff does not do it"
#define ZOFF_NOTE_PRECISION                                                                        \
    "zoff keeps fp32 master weights, updated in host memory, whatever the 16-bit format; the "     \
    "moments' format is zoff.state_format (fp32, bf16 or q8)"
#define ZOFF_NOTE_AIO    "zoff runs one io_uring per swap store with batched submissions"
#define ZOFF_NOTE_FUSION "zoff always runs its fused CPU Adam"
#define ZOFF_NOTE_MONITOR                                                                          \
    "zoff writes no monitor files; `zoff train --json` and zoff_get_stats give the metrics"
#define ZOFF_NOTE_TRAINER "a trainer/engine reporting setting; zoff only runs the optimizer"
#define ZOFF_NOTE_CPUADAM "zoff always runs its own CPU Adam"
#define ZOFF_NOTE_CKPT                                                                             \
    "zoff_save/zoff_load write zoff's own checkpoint format (docs/checkpoints.md)"
#define ZOFF_NOTE_DTYPES                                                                           \
    "zoff accumulates and updates in fp32; the parameter dtype is the one passed to "              \
    "zoff_add_param"
#define ZOFF_NOTE_MODEL "a model-side feature of the DeepSpeed engine; zoff only runs the optimizer"

static const zoff__ds_key ds_keys[] = {
    {"activation_checkpointing", DS_OBJECT, ZOFF_NOTE_MODEL},
    {"activation_checkpointing.contiguous_memory_optimization", DS_ANY, ZOFF_NOTE_MODEL},
    {"activation_checkpointing.cpu_checkpointing", DS_ANY, ZOFF_NOTE_MODEL},
    {"activation_checkpointing.number_checkpoints", DS_ANY, ZOFF_NOTE_MODEL},
    {"activation_checkpointing.partition_activations", DS_ANY, ZOFF_NOTE_MODEL},
    {"activation_checkpointing.profile", DS_ANY, ZOFF_NOTE_MODEL},
    {"activation_checkpointing.synchronize_checkpoint_boundary", DS_ANY, ZOFF_NOTE_MODEL},
    {"aio.intra_op_parallelism", DS_ANY, ZOFF_NOTE_AIO},
    {"aio.overlap_events", DS_ANY, ZOFF_NOTE_AIO},
    {"aio.single_submit", DS_ANY, ZOFF_NOTE_AIO},
    {"amp", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"autotuning", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"bf16.bf16_master_weights_and_grads", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"bf16.bf16_optimizer_states", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"bf16.check_grad_overflow", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"bf16.immediate_grad_update", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"bfloat16.bf16_master_weights_and_grads", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"bfloat16.bf16_optimizer_states", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"bfloat16.check_grad_overflow", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"bfloat16.immediate_grad_update", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"checkpoint", DS_OBJECT, ZOFF_NOTE_CKPT},
    {"checkpoint.load_universal", DS_ANY, ZOFF_NOTE_CKPT},
    {"checkpoint.parallel_write", DS_ANY, ZOFF_NOTE_CKPT},
    {"checkpoint.tag_validation", DS_ANY, ZOFF_NOTE_CKPT},
    {"checkpoint.use_node_local_storage", DS_ANY, ZOFF_NOTE_CKPT},
    {"comet", DS_OBJECT, ZOFF_NOTE_MONITOR},
    {"comet.api_key", DS_STRING, ZOFF_NOTE_MONITOR},
    {"comet.enabled", DS_BOOL, ZOFF_NOTE_MONITOR},
    {"comet.experiment_key", DS_STRING, ZOFF_NOTE_MONITOR},
    {"comet.experiment_name", DS_STRING, ZOFF_NOTE_MONITOR},
    {"comet.mode", DS_STRING, ZOFF_NOTE_MONITOR},
    {"comet.online", DS_BOOL, ZOFF_NOTE_MONITOR},
    {"comet.project", DS_STRING, ZOFF_NOTE_MONITOR},
    {"comet.samples_log_interval", DS_INT, ZOFF_NOTE_MONITOR},
    {"comet.workspace", DS_STRING, ZOFF_NOTE_MONITOR},
    {"comms_logger", DS_OBJECT, ZOFF_NOTE_MULTI},
    {"comms_logger.debug", DS_BOOL, ZOFF_NOTE_MULTI},
    {"comms_logger.enabled", DS_BOOL, ZOFF_NOTE_MULTI},
    {"comms_logger.prof_all", DS_BOOL, ZOFF_NOTE_MULTI},
    {"comms_logger.prof_ops", DS_LIST, ZOFF_NOTE_MULTI},
    {"comms_logger.verbose", DS_BOOL, ZOFF_NOTE_MULTI},
    {"communication_data_type", DS_STRING, ZOFF_NOTE_MULTI},
    {"compile", DS_OBJECT, ZOFF_NOTE_MODEL},
    {"compile.autoep_non_moe", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.debug_log", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.deepcompile", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.double_buffer", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.free_activation", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.free_activation_threshold", DS_INT, ZOFF_NOTE_MODEL},
    {"compile.keep_all_input_tensors", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.keep_int_input_tensors", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.offload_activation", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.offload_activation_pin_memory", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.offload_opt_states", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.offload_parameters", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.passes", DS_LIST, ZOFF_NOTE_MODEL},
    {"compile.symmetric_memory", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.sync_after_allgather", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.sync_after_reduce", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.sync_before_allgather", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compile.sync_before_reduce", DS_BOOL, ZOFF_NOTE_MODEL},
    {"compression_training", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"csv_monitor", DS_OBJECT, ZOFF_NOTE_MONITOR},
    {"csv_monitor.enabled", DS_BOOL, ZOFF_NOTE_MONITOR},
    {"csv_monitor.job_name", DS_STRING, ZOFF_NOTE_MONITOR},
    {"csv_monitor.output_path", DS_STRING, ZOFF_NOTE_MONITOR},
    {"curriculum_learning", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"data_efficiency", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"data_types", DS_OBJECT, ZOFF_NOTE_DTYPES},
    {"data_types.buffer_dtype", DS_ANY, ZOFF_NOTE_DTYPES},
    {"data_types.grad_accum_dtype", DS_ANY, ZOFF_NOTE_DTYPES},
    {"data_types.keep_in_fp32_modules", DS_ANY, ZOFF_NOTE_DTYPES},
    {"data_types.param_dtype", DS_ANY, ZOFF_NOTE_DTYPES},
    {"dataloader_drop_last", DS_BOOL, ZOFF_NOTE_TRAINER},
    {"datastates", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"disable_allgather", DS_BOOL, ZOFF_NOTE_MULTI},
    {"disable_python_gc", DS_BOOL, ZOFF_NOTE_TRAINER},
    {"dump_state", DS_BOOL, ZOFF_NOTE_TRAINER},
    {"eigenvalue", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"elasticity", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"expert_parallel", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"flops_profiler", DS_OBJECT, ZOFF_NOTE_TRAINER},
    {"flops_profiler.detailed", DS_ANY, ZOFF_NOTE_TRAINER},
    {"flops_profiler.enabled", DS_ANY, ZOFF_NOTE_TRAINER},
    {"flops_profiler.module_depth", DS_ANY, ZOFF_NOTE_TRAINER},
    {"flops_profiler.output_file", DS_ANY, ZOFF_NOTE_TRAINER},
    {"flops_profiler.profile_step", DS_ANY, ZOFF_NOTE_TRAINER},
    {"flops_profiler.recompute_fwd_factor", DS_ANY, ZOFF_NOTE_TRAINER},
    {"flops_profiler.top_modules", DS_ANY, ZOFF_NOTE_TRAINER},
    {"fp16.auto_cast", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"fp16.consecutive_hysteresis", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"fp16.fp16_master_weights_and_grads", DS_BOOL, ZOFF_NOTE_PRECISION},
    {"gradient_allreduce_op", DS_STRING, ZOFF_NOTE_MULTI},
    {"gradient_predivide_factor", DS_NUMBER, ZOFF_NOTE_MULTI},
    {"hybrid_engine", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"log_level", DS_STRING, ZOFF_NOTE_TRAINER},
    {"managed_gradient_accumulation", DS_BOOL, ZOFF_NOTE_BUCKET},
    {"memory_breakdown", DS_BOOL, ZOFF_NOTE_TRAINER},
    {"nebula", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"optimizer.legacy_fusion", DS_BOOL, ZOFF_NOTE_FUSION},
    {"pipeline", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"prescale_gradients", DS_BOOL, ZOFF_NOTE_MULTI},
    {"progressive_layer_drop", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"quantize_training", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"seq_parallel_communication_data_type", DS_STRING, ZOFF_NOTE_MULTI},
    {"sequence_parallel_size", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"sparse_attention", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"steps_per_print", DS_INT, ZOFF_NOTE_TRAINER},
    {"tensor_parallel", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"tensorboard", DS_OBJECT, ZOFF_NOTE_MONITOR},
    {"tensorboard.enabled", DS_BOOL, ZOFF_NOTE_MONITOR},
    {"tensorboard.job_name", DS_STRING, ZOFF_NOTE_MONITOR},
    {"tensorboard.output_path", DS_STRING, ZOFF_NOTE_MONITOR},
    {"timers", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"torch_autocast", DS_OBJECT, ZOFF_NOTE_MODEL},
    {"torch_autocast.dtype", DS_ANY, ZOFF_NOTE_MODEL},
    {"torch_autocast.enabled", DS_ANY, ZOFF_NOTE_MODEL},
    {"torch_autocast.lower_precision_safe_modules", DS_ANY, ZOFF_NOTE_MODEL},
    {"use_data_before_expert_parallelism", DS_BOOL, ZOFF_NOTE_MULTI},
    {"wall_clock_breakdown", DS_BOOL, ZOFF_NOTE_TRAINER},
    {"wandb", DS_OBJECT, ZOFF_NOTE_MONITOR},
    {"wandb.enabled", DS_BOOL, ZOFF_NOTE_MONITOR},
    {"wandb.group", DS_STRING, ZOFF_NOTE_MONITOR},
    {"wandb.project", DS_STRING, ZOFF_NOTE_MONITOR},
    {"wandb.team", DS_STRING, ZOFF_NOTE_MONITOR},
    {"weight_quantization", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"zenflow", DS_OPAQUE, ZOFF_NOTE_ENGINE},
    {"zero_allow_untested_optimizer", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_force_ds_cpu_optimizer", DS_BOOL, ZOFF_NOTE_CPUADAM},
    {"zero_optimization.allgather_bucket_size", DS_INT, ZOFF_NOTE_MULTI},
    {"zero_optimization.allgather_partitions", DS_BOOL, ZOFF_NOTE_MULTI},
    {"zero_optimization.allgather_sequential", DS_BOOL, ZOFF_NOTE_STAGE3},
    {"zero_optimization.compute_grad_norm", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.contiguous_gradients", DS_BOOL, ZOFF_NOTE_CONTIG},
    {"zero_optimization.cpu_offload", DS_BOOL, ZOFF_NOTE_LEGACY_OFFLOAD},
    {"zero_optimization.cpu_offload_param", DS_BOOL, ZOFF_NOTE_LEGACY_OFFLOAD},
    {"zero_optimization.cpu_offload_use_pin_memory", DS_BOOL, ZOFF_NOTE_LEGACY_OFFLOAD},
    {"zero_optimization.elastic_checkpoint", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.enable_sanity_checks", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.gather_16bit_weights_on_model_save", DS_BOOL, ZOFF_NOTE_STAGE3},
    {"zero_optimization.ignore_unused_parameters", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.leaf_module", DS_OBJECT, ZOFF_NOTE_STAGE3},
    {"zero_optimization.leaf_module.classes", DS_LIST, ZOFF_NOTE_STAGE3},
    {"zero_optimization.leaf_module.name_suffixes", DS_LIST, ZOFF_NOTE_STAGE3},
    {"zero_optimization.leaf_module.names", DS_LIST, ZOFF_NOTE_STAGE3},
    {"zero_optimization.legacy_stage1", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.load_from_fp32_weights", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.log_trace_cache_warnings", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.max_live_parameters", DS_INT, ZOFF_NOTE_STAGE3},
    {"zero_optimization.max_reuse_distance", DS_INT, ZOFF_NOTE_STAGE3},
    {"zero_optimization.memory_efficient_linear", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.model_persistence_threshold", DS_INT, ZOFF_NOTE_STAGE3},
    {"zero_optimization.module_granularity_threshold", DS_INT, ZOFF_NOTE_STAGE3},
    {"zero_optimization.offload_optimizer.cpuadam_cores_perc", DS_NUMBER, ZOFF_NOTE_OFFLOAD_TUNING},
    {"zero_optimization.offload_optimizer.fast_init", DS_BOOL, ZOFF_NOTE_OFFLOAD_TUNING},
    {"zero_optimization.offload_optimizer.pipeline_read", DS_BOOL, ZOFF_NOTE_OFFLOAD_TUNING},
    {"zero_optimization.offload_optimizer.pipeline_write", DS_BOOL, ZOFF_NOTE_OFFLOAD_TUNING},
    {"zero_optimization.offload_optimizer.super_offload", DS_BOOL, ZOFF_NOTE_OFFLOAD_TUNING},
    {"zero_optimization.offload_param.max_in_cpu", DS_INT, ZOFF_NOTE_PARAM},
    {"zero_optimization.offload_param.nvme_path", DS_ANY, ZOFF_NOTE_PARAM},
    {"zero_optimization.offload_param.pin_memory", DS_BOOL, ZOFF_NOTE_PARAM},
    {"zero_optimization.overlap_comm", DS_BOOL, ZOFF_NOTE_MULTI},
    {"zero_optimization.override_module_apply", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.param_persistence_threshold", DS_INT, ZOFF_NOTE_STAGE3},
    {"zero_optimization.parameter_alignment", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.pipeline_loading_checkpoint", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.prefetch_bucket_size", DS_INT, ZOFF_NOTE_STAGE3},
    {"zero_optimization.reduce_scatter", DS_BOOL, ZOFF_NOTE_MULTI},
    {"zero_optimization.round_robin_gradients", DS_BOOL, ZOFF_NOTE_MULTI},
    {"zero_optimization.save_muon_momentum_buffer_in_memory", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.stage", DS_INT, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_allgather_sequential", DS_BOOL, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_gather_16bit_weights_on_model_save", DS_BOOL, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_gather_fp16_weights_on_model_save", DS_BOOL, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_max_live_parameters", DS_INT, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_max_reuse_distance", DS_INT, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_model_persistence_threshold", DS_INT, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_module_granularity_threshold", DS_INT, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_param_persistence_threshold", DS_INT, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_prefetch_bucket_size", DS_INT, ZOFF_NOTE_STAGE},
    {"zero_optimization.stage3_use_all_reduce_for_fetch_params", DS_BOOL, ZOFF_NOTE_STAGE},
    {"zero_optimization.sub_group_size", DS_INT, ZOFF_NOTE_SUBGROUP},
    {"zero_optimization.use_all_reduce_for_fetch_params", DS_BOOL, ZOFF_NOTE_STAGE3},
    {"zero_optimization.use_multi_rank_bucket_allreduce", DS_BOOL, ZOFF_NOTE_MULTI},
    {"zero_optimization.zenflow", DS_OBJECT, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.auto_ratio", DS_NUMBER, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.full_warm_up_rounds", DS_INT, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.offload", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.overlap_step", DS_BOOL, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.pt_reserved_cores_perc", DS_NUMBER, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.select_interval", DS_ANY, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.select_strategy", DS_STRING, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.steps_per_epoch", DS_INT, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.topk_ratio", DS_NUMBER, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zenflow.update_interval", DS_ANY, ZOFF_NOTE_ENGINE},
    {"zero_optimization.zero_hpz_partition_size", DS_INT, ZOFF_NOTE_MULTI},
    {"zero_optimization.zero_quantized_gradients", DS_BOOL, ZOFF_NOTE_MULTI},
    {"zero_optimization.zero_quantized_nontrainable_weights", DS_BOOL, ZOFF_NOTE_MULTI},
    {"zero_optimization.zero_quantized_weights", DS_BOOL, ZOFF_NOTE_MULTI},
    /* optimizer.params keys of DeepSpeed's and torch's Adam that zoff's kernel has no use for
     * (DeepSpeed passes params to the optimizer's constructor, so the schema has no list) */
    {"optimizer.params.torch_adam", DS_BOOL, ZOFF_NOTE_FUSION},
    {"optimizer.params.fused", DS_BOOL, ZOFF_NOTE_FUSION},
    {"optimizer.params.foreach", DS_ANY, ZOFF_NOTE_FUSION},
    {"optimizer.params.capturable", DS_BOOL, ZOFF_NOTE_FUSION},
    {"optimizer.params.differentiable", DS_BOOL, ZOFF_NOTE_FUSION},
    {"optimizer.params.set_grad_none", DS_BOOL, ZOFF_NOTE_FUSION},
    /* keys of older DeepSpeed versions that configs still carry */
    {"aio.thread_count", DS_ANY, ZOFF_NOTE_AIO},
    {NULL, DS_ANY, NULL},
};

const zoff__ds_key *zoff__ds_key_find(const char *path)
{
    for (const zoff__ds_key *k = ds_keys; k->path; k++)
        if (strcmp(k->path, path) == 0) return k;
    return NULL;
}

const zoff__ds_key *zoff__ds_keys(void)
{
    return ds_keys;
}
