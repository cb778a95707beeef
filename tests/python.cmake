# python.cmake — registers the Python binding's pytest suites (python/tests/) with CTest.
#   python_binding  numpy-only binding test, label quick (always runs where numpy + pytest are)
#   python_torch    zoff.torch vs torch.optim, label slow (runs where torch is installed)
#   python_lion_adagrad  zoff.torch.Lion / Adagrad vs references, q8 AdamW (torch), slow
#   python_stream   zoff.torch.stream (streamed blocks of a small transformer), label slow
#   python_install  `pip wheel ./python` + install into a venv + import, label slow (builds
#                   libzoff without CUDA in <build>/python-wheel)
#   python_torchrun_np2  zoff.torch under torchrun (2 ranks, sim device, zoff's collectives over
#                   torch.distributed gloo) bit-equal to the 1-rank run, label mpi (skips 77
#                   without torch)
# Each exits 77 (skipped) when its Python modules are missing and says which. The interpreter
# is the `python3` first on PATH (the one scripts/deps.sh --with-python installs into), or
# -DZOFF_PYTHON=/path/to/python. The binding loads this build's libzoff via ZOFF_LIBRARY.
# With ZOFF_SANITIZE the sanitizer runtimes are preloaded into the interpreter (an ASan library
# cannot be dlopen'ed otherwise) and leak checking is off (CPython keeps memory at exit).
find_program(ZOFF_PYTHON NAMES python3 python DOC "Python interpreter for the binding tests")
if(NOT ZOFF_PYTHON)
  message(STATUS "zoff: no python3 found, Python binding tests not registered")
  return()
endif()

set(_zoff_py_env "ZOFF_LIBRARY=$<TARGET_FILE:zoff_shared>"
    "ZOFF_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp" "PYTHONPATH=${PROJECT_SOURCE_DIR}/python"
    "PYTHONDONTWRITEBYTECODE=1" "ZOFF_WHEEL_BUILD_DIR=${CMAKE_BINARY_DIR}/python-wheel")
if(ZOFF_SANITIZE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE _zoff_asan OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                  OUTPUT_VARIABLE _zoff_ubsan OUTPUT_STRIP_TRAILING_WHITESPACE)
  list(APPEND _zoff_py_env "LD_PRELOAD=${_zoff_asan} ${_zoff_ubsan}" "ASAN_OPTIONS=detect_leaks=0")
endif()

foreach(suite binding torch stream install lion_adagrad)
  add_test(NAME python_${suite}
           COMMAND ${ZOFF_PYTHON} ${PROJECT_SOURCE_DIR}/python/tests/run_ctest.py ${suite})
  if(suite STREQUAL "binding")
    set(_labels quick)
  else()
    set(_labels slow)
  endif()
  set_tests_properties(python_${suite} PROPERTIES LABELS "${_labels}" SKIP_RETURN_CODE 77
                       TIMEOUT 1200 ENVIRONMENT "${_zoff_py_env}")
endforeach()

add_test(NAME python_torchrun_np2
         COMMAND ${ZOFF_PYTHON} ${PROJECT_SOURCE_DIR}/python/tests/torchrun_dp.py)
set_tests_properties(python_torchrun_np2 PROPERTIES LABELS mpi SKIP_RETURN_CODE 77 TIMEOUT 900
                     ENVIRONMENT "${_zoff_py_env}")
