zoff_add_test(NAME test_common SOURCES test_common.c MODULES common LABELS quick)
