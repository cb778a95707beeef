# Parameter streaming (runtime/stream.c): units, fetch/release with prefetch, a device smaller
# than the 16-bit weights, bit-identical to the same model resident, on both tiers with sim
# jitter; a changed forward order; the error cases (test_stream).
zoff_add_test(NAME test_stream SOURCES test_stream.c MODULES runtime ARGS cpu LABELS quick
              TIMEOUT 180)
zoff_add_test_variant(NAME test_stream_nvme EXE test_stream ARGS nvme LABELS nvme
                      ENV ZOFF_AIO_ODIRECT=0 TIMEOUT 300)
# `zoff train --stream` vs the same run resident (test_stream_train, runs the zoff binary).
if(TARGET zoff)
  zoff_add_test(NAME test_stream_train SOURCES test_stream_train.c MODULES common LABELS quick
                ARGS $<TARGET_FILE:zoff> TIMEOUT 300)
  add_dependencies(test_stream_train zoff)
endif()
