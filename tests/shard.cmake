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
  # a checkpoint saved by 3 ranks loads with 2 and with 1 and goes on as without the restart
  set(ckdir ${CMAKE_BINARY_DIR}/test-tmp/shard-ckpt)
  zoff_add_test_variant(NAME test_shard_ckpt_save_np3 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi
                        TIMEOUT 300 ARGS ${ZOFF_MPIRUN_FLAGS} -np 3 $<TARGET_FILE:test_shard>
                        cpu save ${ckdir})
  zoff_add_test_variant(NAME test_shard_ckpt_load_np2 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi
                        TIMEOUT 300 ARGS ${ZOFF_MPIRUN_FLAGS} -np 2 $<TARGET_FILE:test_shard>
                        nvme load ${ckdir})
  zoff_add_test_variant(NAME test_shard_ckpt_load_np1 EXE test_shard LABELS mpi TIMEOUT 300
                        ARGS cpu load ${ckdir})
  # the last of 3 ranks dies mid-step: the others fail within the watchdog timeout naming the
  # phase and the dead rank (--enable-recovery: mpirun lets the survivors run instead of killing
  # them at once; the killed rank makes mpirun's exit status non-zero, so the output decides)
  zoff_add_test_variant(NAME test_shard_kill_np3 EXE ${MPIEXEC_EXECUTABLE} LABELS mpi TIMEOUT 120
                        ARGS ${ZOFF_MPIRUN_FLAGS} --enable-recovery -np 3
                             $<TARGET_FILE:test_shard> cpu kill)
  set_tests_properties(test_shard_kill_np3 PROPERTIES
                       PASS_REGULAR_EXPRESSION "rank 0: watchdog WORKED"
                       FAIL_REGULAR_EXPRESSION "watchdog FAILED")
  set_tests_properties(test_shard_ckpt_save_np3 PROPERTIES FIXTURES_SETUP shard_ckpt)
  set_tests_properties(test_shard_ckpt_load_np2 test_shard_ckpt_load_np1 PROPERTIES
                       FIXTURES_REQUIRED shard_ckpt)
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
