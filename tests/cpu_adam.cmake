# cpu_adam/: the fused CPU Adam kernel and the sum of squares. One executable, run once per ISA
# (ZOFF_CPU_ISA); an ISA this CPU lacks is reported as skipped (exit 77). The plain test_adam
# runs whatever ZOFF_CPU_ISA / CPUID select. OMP_WAIT_POLICY=passive: idle OpenMP workers sleep
# instead of spinning between the many small parallel regions (the cores are shared).
zoff_add_test(NAME test_adam SOURCES test_adam.c MODULES cpu_adam common LABELS quick
              ENV OMP_WAIT_POLICY=passive TIMEOUT 120)
foreach(isa scalar avx2 avx512)
  zoff_add_test_variant(NAME test_adam_${isa} EXE test_adam LABELS quick
                        ENV ZOFF_CPU_ISA=${isa} OMP_WAIT_POLICY=passive TIMEOUT 120)
endforeach()

# `zoff bench adam` at a small size: it checks every kernel against the scalar reference (bit
# for bit) before timing and exits 1 when a check fails.
if(TARGET zoff AND TARGET zoff_bench)
  add_test(NAME bench_adam_smoke
           COMMAND zoff bench adam --numel 100003 --reps 3
                   --json ${CMAKE_BINARY_DIR}/test-tmp/bench_adam_smoke.json)
  set_tests_properties(bench_adam_smoke PROPERTIES LABELS quick TIMEOUT 120
                       ENVIRONMENT "OMP_WAIT_POLICY=passive")
endif()

# Compact optimizer state (bf16, q8 moments) and Lion / Adagrad: once per ISA like test_adam;
# test_lion_adagrad runs only the paper / torch reference checks.
zoff_add_test(NAME test_q8_state SOURCES test_optim_state.c MODULES cpu_adam common LABELS quick
              ENV OMP_WAIT_POLICY=passive TIMEOUT 300)
foreach(isa scalar avx2 avx512)
  zoff_add_test_variant(NAME test_q8_state_${isa} EXE test_q8_state LABELS quick
                        ENV ZOFF_CPU_ISA=${isa} OMP_WAIT_POLICY=passive TIMEOUT 300)
endforeach()
zoff_add_test_variant(NAME test_lion_adagrad EXE test_q8_state ARGS ref LABELS quick
                      ENV OMP_WAIT_POLICY=passive TIMEOUT 120)

# `zoff bench adam --state/--optim` (the generic kernel vs its own byte stream) and
# `zoff bench step --state q8` on the nvme tier, at small sizes: each checks its kernels against
# the scalar reference before timing and must report the "nvme bytes per param" row.
if(TARGET zoff AND TARGET zoff_bench)
  add_test(NAME bench_adam_q8_smoke
           COMMAND zoff bench adam --state q8 --numel 100003 --reps 3
                   --json ${CMAKE_BINARY_DIR}/test-tmp/bench_adam_q8_smoke.json)
  add_test(NAME bench_adam_lion_adagrad_smoke
           COMMAND sh -c "$<TARGET_FILE:zoff> bench adam --optim lion --state bf16 --numel 70001 --reps 3 && $<TARGET_FILE:zoff> bench adam --optim adagrad --numel 70001 --reps 3")
  add_test(NAME bench_step_q8_state_smoke
           COMMAND zoff bench step --params 8M --layers 4 --tier nvme --state q8 --steps 2
                   --partition-numel 1M --nvme-path ${CMAKE_BINARY_DIR}/test-tmp
                   --json ${CMAKE_BINARY_DIR}/test-tmp/bench_step_q8_smoke.json)
  set_tests_properties(bench_adam_q8_smoke bench_adam_lion_adagrad_smoke PROPERTIES LABELS quick
                       TIMEOUT 120 ENVIRONMENT "OMP_WAIT_POLICY=passive")
  set_tests_properties(bench_step_q8_state_smoke PROPERTIES LABELS nvme TIMEOUT 300
                       ENVIRONMENT "OMP_WAIT_POLICY=passive" PASS_REGULAR_EXPRESSION
                       "nvme bytes per param")
endif()
