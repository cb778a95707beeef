# runtime/ + offload/store: the public API's contract (test_runtime_api), the loss scaler
# (test_scaler), the memory plan (test_plan), 200-step runs against a float64 AdamW reference on
# every tier (test_step; cpu and swapped tiers bit-identical; jitter variants with several seeds),
# overflow / eager / delayed (test_step_modes), parameters without a gradient, discarded
# gradients and non-finite gradients in every mode (test_grad_skip) and checkpoints through the runtime
# (test_ckpt_runtime). "nvme" variants put the optimizer state on swap files under test-tmp.
zoff_add_test(NAME test_scaler SOURCES test_scaler.c MODULES runtime LABELS quick TIMEOUT 60)
zoff_add_test(NAME test_plan SOURCES test_plan.c MODULES runtime LABELS quick TIMEOUT 60)
zoff_add_test(NAME test_runtime_api SOURCES test_runtime_api.c MODULES runtime LABELS quick
              TIMEOUT 60)
zoff_add_test(NAME test_step SOURCES test_step.c MODULES runtime ARGS cpu LABELS quick
              TIMEOUT 120)
zoff_add_test_variant(NAME test_step_nvme EXE test_step ARGS nvme LABELS nvme TIMEOUT 300)
zoff_add_test_variant(NAME test_step_ratio EXE test_step ARGS ratio LABELS nvme TIMEOUT 300)
# Jitter variants check device ordering, not the disk: buffered swap I/O keeps them quick on a
# shared disk whose O_DIRECT latency is tens of ms.
foreach(seed 1 2 3)
  zoff_add_test_variant(NAME test_step_jitter_${seed} EXE test_step ARGS jitter LABELS quick
                        ENV ZOFF_SIM_JITTER=${seed} ZOFF_AIO_ODIRECT=0 TIMEOUT 120)
endforeach()
zoff_add_test(NAME test_step_modes SOURCES test_step_modes.c MODULES runtime LABELS quick
              TIMEOUT 120)
zoff_add_test_variant(NAME test_step_modes_nvme EXE test_step_modes ARGS nvme LABELS nvme
                      TIMEOUT 300)
zoff_add_test_variant(NAME test_step_modes_jitter EXE test_step_modes LABELS quick
                      ENV ZOFF_SIM_JITTER=7 TIMEOUT 120)
zoff_add_test_variant(NAME test_step_modes_nvme_jitter EXE test_step_modes ARGS nvme LABELS nvme
                      ENV ZOFF_SIM_JITTER=8 TIMEOUT 300)
zoff_add_test(NAME test_grad_skip SOURCES test_grad_skip.c MODULES runtime LABELS quick
              TIMEOUT 120)
zoff_add_test_variant(NAME test_grad_skip_nvme EXE test_grad_skip ARGS nvme LABELS nvme
                      TIMEOUT 300)
zoff_add_test(NAME test_ckpt_runtime SOURCES test_ckpt_runtime.c MODULES runtime LABELS quick
              TIMEOUT 120)
zoff_add_test_variant(NAME test_ckpt_runtime_nvme EXE test_ckpt_runtime ARGS nvme LABELS nvme
                      TIMEOUT 300)
zoff_add_test(NAME test_runtime_store SOURCES test_runtime_store.c MODULES runtime LABELS quick
              TIMEOUT 120)
# Compact optimizer state (bf16 / q8 moments) and Lion / Adagrad through the runtime.
zoff_add_test(NAME test_state_runtime SOURCES test_state_runtime.c MODULES runtime ARGS cpu
              LABELS quick TIMEOUT 300)
zoff_add_test_variant(NAME test_state_runtime_nvme EXE test_state_runtime ARGS nvme LABELS nvme
                      TIMEOUT 300)
# DeepSpeed configs as users write them: schema coverage, one warning per ignored key, errors in
# one pass, "auto", batch rules, schedules against DeepSpeed's values, first-hour API errors.
zoff_add_test(NAME test_ds_config SOURCES test_ds_config.c MODULES runtime LABELS quick
              TIMEOUT 60)
target_compile_definitions(test_ds_config PRIVATE ZOFF_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
