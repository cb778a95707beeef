# runtime/buckets.c + accumulation: zoff-owned gradient buckets (test_bucket: bit-identical to the
# full-buffer path on a GPU too small for it, splitting, bad input; sync and delayed overlap;
# jitter variants expose missing device waits) and gradient accumulation (test_accum: k
# micro-batches = one batch, overflow in any micro-batch skips, checkpoints refused mid-window,
# delayed overlap, nvme tier).
zoff_add_test(NAME test_bucket SOURCES test_bucket.c MODULES runtime LABELS quick TIMEOUT 120)
zoff_add_test_variant(NAME test_bucket_delayed EXE test_bucket ARGS delayed LABELS quick
                      TIMEOUT 120)
foreach(seed 1 2)
  zoff_add_test_variant(NAME test_bucket_jitter_${seed} EXE test_bucket ARGS sync LABELS quick
                        ENV ZOFF_SIM_JITTER=${seed} TIMEOUT 300)
endforeach()
zoff_add_test_variant(NAME test_bucket_delayed_jitter EXE test_bucket ARGS delayed LABELS quick
                      ENV ZOFF_SIM_JITTER=3 TIMEOUT 300)
zoff_add_test(NAME test_accum SOURCES test_accum.c MODULES runtime ARGS cpu LABELS quick
              TIMEOUT 120)
zoff_add_test_variant(NAME test_accum_nvme EXE test_accum ARGS nvme LABELS nvme TIMEOUT 300)
zoff_add_test_variant(NAME test_accum_jitter EXE test_accum ARGS cpu LABELS quick
                      ENV ZOFF_SIM_JITTER=4 ZOFF_AIO_ODIRECT=0 TIMEOUT 300)
