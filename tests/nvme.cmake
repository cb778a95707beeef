# nvme/: the I/O engine (test_aio), the swap store (test_swap) and its failure paths
# (test_swap_faults). Each also runs under the thread-pool engine (ZOFF_AIO=threads); the
# "nvme" variants move bigger data (100 MiB round trips, a 1 GiB registered buffer).
zoff_add_test(NAME test_aio SOURCES test_aio.c MODULES nvme LABELS quick TIMEOUT 120)
zoff_add_test_variant(NAME test_aio_threads EXE test_aio LABELS quick ENV ZOFF_AIO=threads
                      TIMEOUT 120)
zoff_add_test_variant(NAME test_aio_nvme EXE test_aio ARGS nvme LABELS nvme TIMEOUT 300)
zoff_add_test(NAME test_swap SOURCES test_swap.c MODULES nvme LABELS quick TIMEOUT 120)
zoff_add_test_variant(NAME test_swap_threads EXE test_swap LABELS quick ENV ZOFF_AIO=threads
                      TIMEOUT 120)
zoff_add_test_variant(NAME test_swap_nvme EXE test_swap ARGS nvme LABELS nvme TIMEOUT 300)
zoff_add_test_variant(NAME test_swap_nvme_threads EXE test_swap ARGS nvme LABELS nvme
                      ENV ZOFF_AIO=threads TIMEOUT 300)
zoff_add_test(NAME test_swap_faults SOURCES test_swap_faults.c MODULES nvme LABELS quick
              TIMEOUT 120)
zoff_add_test_variant(NAME test_swap_faults_threads EXE test_swap_faults LABELS quick
                      ENV ZOFF_AIO=threads TIMEOUT 120)
