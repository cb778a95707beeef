# runtime_config.cmake — tests of the self-contained runtime pieces of issue #5: configuration
# (test_config), checkpoint files and `zoff ckpt` (test_ckpt, plus the safetensors
# interoperability check of tests/check_safetensors.py) and the trace writer (test_trace).
# They compile their runtime sources directly with common/ and cJSON, so they build and run
# whatever the state of the rest of runtime/; the library is built from the same files.
set(ZOFF_RT_DIR ${CMAKE_SOURCE_DIR}/runtime)
# the config reader: its key tables, DeepSpeed's ignored-key table and the lr schedules
set(ZOFF_CONFIG_SRCS ${ZOFF_RT_DIR}/config.c ${ZOFF_RT_DIR}/ds_keys.c ${ZOFF_RT_DIR}/sched.c)
file(GLOB ZOFF_CKPT_SRCS CONFIGURE_DEPENDS ${ZOFF_RT_DIR}/ckpt_*.c)

zoff_add_test(NAME test_config SOURCES test_config.c ${ZOFF_CONFIG_SRCS}
              MODULES common LIBS ${CJSON_LINK_LIBRARIES} LABELS quick TIMEOUT 60)
target_include_directories(test_config PRIVATE ${CJSON_INCLUDE_DIRS})

zoff_add_test(NAME test_trace SOURCES test_trace.c ${ZOFF_RT_DIR}/trace.c
              MODULES common LIBS ${CJSON_LINK_LIBRARIES} LABELS quick TIMEOUT 60)
target_include_directories(test_trace PRIVATE ${CJSON_INCLUDE_DIRS})

zoff_add_test(NAME test_ckpt
              SOURCES test_ckpt.c ${ZOFF_CKPT_SRCS} ${ZOFF_CONFIG_SRCS}
                      ${ZOFF_RT_DIR}/face_ckpt.c ${CMAKE_SOURCE_DIR}/tools/cmd_ckpt.c
              MODULES common LIBS ${CJSON_LINK_LIBRARIES} LABELS quick TIMEOUT 120)
target_include_directories(test_ckpt PRIVATE ${CJSON_INCLUDE_DIRS})

# The standard `safetensors` reader (Python, numpy) loads a checkpoint zoff wrote: test_ckpt
# writes a deterministic one (fixture), check_safetensors.py compares every value and crc32c.
# Skipped (77) when python3, numpy or safetensors is missing (scripts/deps.sh --with-python).
set(ZOFF_CKPT_FIXTURE ${CMAKE_BINARY_DIR}/test-tmp/ckpt-fixture)
zoff_add_test_variant(NAME test_ckpt_fixture EXE test_ckpt ARGS --write-fixture
                      ${ZOFF_CKPT_FIXTURE} LABELS quick TIMEOUT 60)
set_tests_properties(test_ckpt_fixture PROPERTIES FIXTURES_SETUP zoff_ckpt_fixture)
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  zoff_add_test_variant(NAME test_ckpt_safetensors EXE ${Python3_EXECUTABLE}
                        ARGS ${CMAKE_CURRENT_SOURCE_DIR}/check_safetensors.py ${ZOFF_CKPT_FIXTURE}
                        LABELS quick TIMEOUT 60)
else()
  zoff_add_test_variant(NAME test_ckpt_safetensors EXE sh
                        ARGS -c "echo 'SKIP: python3 not found'; exit 77" LABELS quick)
endif()
set_tests_properties(test_ckpt_safetensors PROPERTIES FIXTURES_REQUIRED zoff_ckpt_fixture)
# the same values as several ranks write them (format 3): one safetensors file per rank holding
# the slices "<name>[begin:end]", joined by the manifest
set(ZOFF_CKPT_SLICED_FIXTURE ${CMAKE_BINARY_DIR}/test-tmp/ckpt-sliced-fixture)
zoff_add_test_variant(NAME test_ckpt_sliced_fixture EXE test_ckpt ARGS --write-sliced-fixture
                      ${ZOFF_CKPT_SLICED_FIXTURE} LABELS quick TIMEOUT 60)
set_tests_properties(test_ckpt_sliced_fixture PROPERTIES FIXTURES_SETUP zoff_ckpt_sliced_fixture)
if(Python3_Interpreter_FOUND)
  zoff_add_test_variant(NAME test_ckpt_safetensors_sliced EXE ${Python3_EXECUTABLE}
                        ARGS ${CMAKE_CURRENT_SOURCE_DIR}/check_safetensors.py
                             ${ZOFF_CKPT_SLICED_FIXTURE}
                        LABELS quick TIMEOUT 60)
else()
  zoff_add_test_variant(NAME test_ckpt_safetensors_sliced EXE sh
                        ARGS -c "echo 'SKIP: python3 not found'; exit 77" LABELS quick)
endif()
set_tests_properties(test_ckpt_safetensors_sliced PROPERTIES
                     FIXTURES_REQUIRED zoff_ckpt_sliced_fixture)
