# comm/ (collective layer): test_comm runs under mpirun with 2 and 3 ranks (label mpi) and alone
# (self backend, quick). Without MPI in the build the mpi variants are registered as the plain
# executable, which skips (77) with the reason.
# ZOFF_MPIRUN_FLAGS: root is allowed, more ranks than cores, shared memory without CMA (ptrace
# is restricted in containers).
set(ZOFF_MPIRUN_FLAGS --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism
    none)
zoff_add_test(NAME test_comm SOURCES test_comm.c MODULES comm LABELS quick TIMEOUT 60)
if(ZOFF_HAVE_MPI AND MPIEXEC_EXECUTABLE)
  foreach(np 2 3)
    zoff_add_test_variant(NAME test_comm_np${np} EXE ${MPIEXEC_EXECUTABLE} LABELS mpi TIMEOUT 120
                          ARGS ${ZOFF_MPIRUN_FLAGS} -np ${np} $<TARGET_FILE:test_comm>)
  endforeach()
else()
  foreach(np 2 3)
    zoff_add_test_variant(NAME test_comm_np${np} EXE test_comm LABELS mpi TIMEOUT 60
                          ENV OMPI_COMM_WORLD_SIZE=${np} OMPI_COMM_WORLD_RANK=0)
  endforeach()
endif()
