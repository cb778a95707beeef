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
else()
  zoff_add_test(NAME test_shard SOURCES test_shard.c MODULES runtime LABELS mpi ARGS cpu
                TIMEOUT 60)
endif()
