# trust.cmake — issue #11 / #16 regression tests of the `zoff` command line on hostile input
# (test_cli_trust: runs the built binary and checks exit codes and messages).
if(TARGET zoff)
  zoff_add_test(NAME test_cli_trust SOURCES test_cli_trust.c LABELS quick
                ARGS $<TARGET_FILE:zoff> TIMEOUT 300)
  add_dependencies(test_cli_trust zoff)
endif()
