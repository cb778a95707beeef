# gpu/: the device interface on the sim backend (also under jitter with three seeds), the element
# math of the device kernels, and the same executables on a real GPU (label gpu: ZOFF_DEVICE=cuda;
# they exit 77 = skipped when there is no GPU or no CUDA backend).
zoff_add_test(NAME test_sim SOURCES test_sim.c MODULES gpu LABELS quick TIMEOUT 120)
foreach(seed 1 2 3)
  zoff_add_test_variant(NAME test_sim_jitter${seed} EXE test_sim LABELS quick
                        ENV ZOFF_SIM_JITTER=${seed} TIMEOUT 120)
endforeach()
zoff_add_test_variant(NAME test_sim_on_cuda EXE test_sim LABELS gpu ENV ZOFF_DEVICE=cuda
                      TIMEOUT 120)

zoff_add_test(NAME test_cast SOURCES test_cast.c MODULES gpu LABELS quick TIMEOUT 120)
zoff_add_test_variant(NAME test_cast_jitter1 EXE test_cast LABELS quick ENV ZOFF_SIM_JITTER=1
                      TIMEOUT 120)
zoff_add_test_variant(NAME test_cast_on_cuda EXE test_cast LABELS gpu ENV ZOFF_DEVICE=cuda
                      TIMEOUT 120)
