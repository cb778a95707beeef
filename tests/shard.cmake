# runtime/shard.c: the sharded step under mpirun (label mpi) with 2 and 3 ranks, tiers cpu and
# nvme, against a single-rank runtime in the same process (bit for bit). Without MPI the test is
# registered as the plain executable, which skips (77) with the reason.
if(ZOFF_HAVE_MPI AND MPIEXEC_EXECUTABLE)
  add_executable(test_shard test_shard.c)
  target_link_libraries(test_shard PRIVATE zoff_runtime zoff_testlib)
  foreach(np 2 3)
    foreach(tier cpu nvme)
      zoff_add_test_variant(NAME test_shard_np${np}_${tier} EXE ${MPIEXEC_EXECUTABLE} LABELS mpi
                            TIMEOUT 300 ENV ZOFF_AIO_ODIRECT=0
                            ARGS ${ZOFF_MPIRUN_FLAGS} -np ${np} $<TARGET_FILE:test_shard> ${tier})
    endforeach()
  endforeach()
  # the same under random delays of the sim device's streams (ZOFF_SIM_JITTER): a missing event
  # wait between bucket fill, widening, collective and the copy of the share shows up as a
  # difference from the single-rank run
  zoff_add_test_variant(NAME test_shard_np2_jitter EXE ${MPIEXEC_EXECUTABLE} LABELS mpi
                        TIMEOUT 300 ENV ZOFF_SIM_JITTER=5
                        ARGS ${ZOFF_MPIRUN_FLAGS} -np 2 $<TARGET_FILE:test_shard> cpu)
  # a checkpoint saved by 3 ranks (each writing its own slices) loads with 2 and with 1 and goes
  # on as without the restart; both tiers save and load (the other tier loads, too)
  foreach(tier cpu nvme)
    if(tier STREQUAL "cpu")
      set(sfx "")
      set(other nvme)
    else()
      set(sfx "_nvme")
      set(other cpu)
    endif()
    set(ckdir ${CMAKE_BINARY_DIR}/test-tmp/shard-ckpt${sfx})
    zoff_add_test_variant(NAME test_shard_ckpt_save_np3${sfx} EXE ${MPIEXEC_EXECUTABLE}
                          LABELS mpi TIMEOUT 300 ENV ZOFF_AIO_ODIRECT=0
                          ARGS ${ZOFF_MPIRUN_FLAGS} -np 3 $<TARGET_FILE:test_shard> ${tier} save
                               ${ckdir})
    zoff_add_test_variant(NAME test_shard_ckpt_load_np2${sfx} EXE ${MPIEXEC_EXECUTABLE}
                          LABELS mpi TIMEOUT 300 ENV ZOFF_AIO_ODIRECT=0
                          ARGS ${ZOFF_MPIRUN_FLAGS} -np 2 $<TARGET_FILE:test_shard> ${other} load
                               ${ckdir})
    zoff_add_test_variant(NAME test_shard_ckpt_load_np1${sfx} EXE test_shard LABELS mpi
                          TIMEOUT 300 ENV ZOFF_AIO_ODIRECT=0 ARGS ${tier} load ${ckdir})
    # a corrupt byte in rank 1's slice (a copy of the checkpoint): the load fails naming it, with
    # 2 ranks and with 1; `zoff ckpt verify` on the copy names the file and bytes
    zoff_add_test_variant(NAME test_shard_ckpt_corrupt_np2${sfx} EXE ${MPIEXEC_EXECUTABLE}
                          LABELS mpi TIMEOUT 300 ENV ZOFF_AIO_ODIRECT=0
                          ARGS ${ZOFF_MPIRUN_FLAGS} -np 2 $<TARGET_FILE:test_shard> ${tier}
                               corrupt ${ckdir})
    zoff_add_test_variant(NAME test_shard_ckpt_corrupt_np1${sfx} EXE test_shard LABELS mpi
                          TIMEOUT 300 ENV ZOFF_AIO_ODIRECT=0 ARGS ${tier} corrupt ${ckdir})
    # one rank fails while saving: no partial checkpoint, the previous one stays valid
    zoff_add_test_variant(NAME test_shard_ckpt_savefail_np3${sfx} EXE ${MPIEXEC_EXECUTABLE}
                          LABELS mpi TIMEOUT 300 ENV ZOFF_AIO_ODIRECT=0
                          ARGS ${ZOFF_MPIRUN_FLAGS} -np 3 $<TARGET_FILE:test_shard> ${tier}
                               savefail ${ckdir}-fail)
    set_tests_properties(test_shard_ckpt_save_np3${sfx} PROPERTIES
                         FIXTURES_SETUP shard_ckpt${sfx})
    set_tests_properties(test_shard_ckpt_load_np2${sfx} test_shard_ckpt_load_np1${sfx}
                         test_shard_ckpt_corrupt_np2${sfx} test_shard_ckpt_corrupt_np1${sfx}
                         PROPERTIES FIXTURES_REQUIRED shard_ckpt${sfx})
    set_tests_properties(test_shard_ckpt_corrupt_np1${sfx} PROPERTIES
                         FIXTURES_SETUP shard_ckpt_corrupt${sfx})
    if(TARGET zoff)
      add_test(NAME test_shard_ckpt_verify_corrupt${sfx}
               COMMAND zoff ckpt verify ${ckdir}-corrupt-0)
      set_tests_properties(test_shard_ckpt_verify_corrupt${sfx} PROPERTIES LABELS mpi TIMEOUT 60
                           FIXTURES_REQUIRED shard_ckpt_corrupt${sfx}
                           PASS_REGULAR_EXPRESSION
                           "FAILED:.*slice .* \\(written by rank 1\\).*optimizer\\.rank00001\\.safetensors bytes")
    endif()
  endforeach()
  # bf16 moments: each rank decodes its slices on save, 2 ranks and 1 encode their ranges on load
  set(ckbf ${CMAKE_BINARY_DIR}/test-tmp/shard-ckpt-bf16)
  zoff_add_test_variant(NAME test_shard_ckpt_save_np3_bf16 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi
                        TIMEOUT 300 ENV ZT_STATE_FORMAT=bf16 ZOFF_AIO_ODIRECT=0
                        ARGS ${ZOFF_MPIRUN_FLAGS} -np 3 $<TARGET_FILE:test_shard> nvme save ${ckbf})
  zoff_add_test_variant(NAME test_shard_ckpt_load_np2_bf16 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi
                        TIMEOUT 300 ENV ZT_STATE_FORMAT=bf16 ZOFF_AIO_ODIRECT=0
                        ARGS ${ZOFF_MPIRUN_FLAGS} -np 2 $<TARGET_FILE:test_shard> cpu load ${ckbf})
  zoff_add_test_variant(NAME test_shard_ckpt_load_np1_bf16 EXE test_shard LABELS mpi TIMEOUT 300
                        ENV ZT_STATE_FORMAT=bf16 ARGS nvme load ${ckbf})
  set_tests_properties(test_shard_ckpt_save_np3_bf16 PROPERTIES FIXTURES_SETUP shard_ckpt_bf16)
  set_tests_properties(test_shard_ckpt_load_np2_bf16 test_shard_ckpt_load_np1_bf16 PROPERTIES
                       FIXTURES_REQUIRED shard_ckpt_bf16)
  # the last of 3 ranks is killed while writing its slices: the others' save fails within the
  # watchdog timeout and the previous checkpoint stays whole (no partial checkpoint)
  zoff_add_test_variant(NAME test_shard_ckpt_savekill_np3 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi
                        TIMEOUT 120
                        ARGS ${ZOFF_MPIRUN_FLAGS} --enable-recovery -np 3
                             $<TARGET_FILE:test_shard> cpu savekill
                             ${CMAKE_BINARY_DIR}/test-tmp/shard-ckpt-kill)
  set_tests_properties(test_shard_ckpt_savekill_np3 PROPERTIES
                       PASS_REGULAR_EXPRESSION "rank 0: savekill WORKED"
                       FAIL_REGULAR_EXPRESSION "savekill FAILED")
  # a checkpoint of one process (format 2, one file) loads with 3 ranks
  set(ck1 ${CMAKE_BINARY_DIR}/test-tmp/shard-ckpt-single)
  zoff_add_test_variant(NAME test_shard_ckpt_save_np1 EXE test_shard LABELS mpi TIMEOUT 300
                        ARGS cpu save ${ck1})
  zoff_add_test_variant(NAME test_shard_ckpt_load1_np3 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi
                        TIMEOUT 300 ENV ZOFF_AIO_ODIRECT=0
                        ARGS ${ZOFF_MPIRUN_FLAGS} -np 3 $<TARGET_FILE:test_shard> nvme load ${ck1})
  set_tests_properties(test_shard_ckpt_save_np1 PROPERTIES FIXTURES_SETUP shard_ckpt_single)
  set_tests_properties(test_shard_ckpt_load1_np3 PROPERTIES FIXTURES_REQUIRED shard_ckpt_single)
  # the last of 3 ranks dies mid-step: the others fail within the watchdog timeout naming the
  # phase and the dead rank (--enable-recovery: mpirun lets the survivors run instead of killing
  # them at once; the killed rank makes mpirun's exit status non-zero, so the output decides)
  zoff_add_test_variant(NAME test_shard_kill_np3 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi TIMEOUT 120
                        ARGS ${ZOFF_MPIRUN_FLAGS} --enable-recovery -np 3
                             $<TARGET_FILE:test_shard> cpu kill)
  set_tests_properties(test_shard_kill_np3 PROPERTIES
                       PASS_REGULAR_EXPRESSION "rank 0: watchdog WORKED"
                       FAIL_REGULAR_EXPRESSION "watchdog FAILED")
else()
  zoff_add_test(NAME test_shard SOURCES test_shard.c MODULES runtime LABELS mpi ARGS cpu
                TIMEOUT 60)
endif()
# `zoff train` under mpirun: 2 data-parallel ranks train, checkpoint, and 3 ranks resume from it
if(ZOFF_HAVE_MPI AND MPIEXEC_EXECUTABLE AND TARGET zoff)
  set(trdir ${CMAKE_BINARY_DIR}/test-tmp/train-mpi)
  set(trargs --layers 2 --width 64 --batch 2 --offload cpu --quiet --samples 0 --eval-interval 0
      --nvme-path ${trdir}-swap)
  zoff_add_test_variant(NAME test_train_mpi_np2 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi TIMEOUT 300
                        ARGS ${ZOFF_MPIRUN_FLAGS} -np 2 $<TARGET_FILE:zoff> train --steps 6
                             --until 3 --ckpt-dir ${trdir} ${trargs})
  zoff_add_test_variant(NAME test_train_mpi_resume_np3 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi
                        TIMEOUT 300
                        ARGS ${ZOFF_MPIRUN_FLAGS} -np 3 $<TARGET_FILE:zoff> train --steps 6
                             --resume ${trdir} ${trargs})
  set_tests_properties(test_train_mpi_np2 PROPERTIES FIXTURES_SETUP train_mpi)
  set_tests_properties(test_train_mpi_resume_np3 PROPERTIES FIXTURES_REQUIRED train_mpi)
endif()
# placement of several ranks on one node: core split and swap-path shares; `zoff info --ranks`
zoff_add_test(NAME test_placement SOURCES test_placement.c MODULES offload LABELS quick TIMEOUT 60)
if(TARGET zoff)
  add_test(NAME test_info_ranks COMMAND zoff info --ranks 3 --path /tmp --path . --json)
  set_tests_properties(test_info_ranks PROPERTIES LABELS quick TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "\"swap_paths\"")
endif()
