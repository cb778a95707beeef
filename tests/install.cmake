# Install + out-of-tree consumer (find_package and pkg-config). Label slow: it installs the tree.
add_test(NAME test_install
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_install.sh ${CMAKE_BINARY_DIR}
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/test-tmp/install)
set_tests_properties(test_install PROPERTIES LABELS "slow" TIMEOUT 600)
# The C step-loop example, built in-tree: the loss falls and the checkpoint reloads.
add_test(NAME test_example_step_loop
         COMMAND sh -c "cd '${CMAKE_BINARY_DIR}/test-tmp' && rm -rf step_loop_ckpt && $<TARGET_FILE:zoff_example_step_loop> 30 step_loop_ckpt")
set_tests_properties(test_example_step_loop PROPERTIES LABELS "quick" TIMEOUT 120)
# zoff.h in C++11..20 under -Wall -Wextra -pedantic -Werror (the *_INIT macros included).
find_program(ZOFF_GXX NAMES g++ c++)
set(ZOFF_CXX_TEST_SAN "")
if(ZOFF_SANITIZE) # the ASan runtime must come first: the consumer is built with it too
  set(ZOFF_CXX_TEST_SAN "-fsanitize=address,undefined")
endif()
if(ZOFF_GXX)
  add_test(NAME test_header_cxx
           COMMAND sh -c "for s in c++11 c++14 c++17 c++20; do ${ZOFF_GXX} -std=$s -Wall -Wextra -pedantic -Werror ${ZOFF_CXX_TEST_SAN} -I'${CMAKE_SOURCE_DIR}/include' '${CMAKE_CURRENT_SOURCE_DIR}/test_header_cxx.cpp' -o test_header_cxx_$s $<TARGET_FILE:zoff_shared> -Wl,-rpath,$<TARGET_FILE_DIR:zoff_shared> && ./test_header_cxx_$s || exit 1; echo $s ok; done"
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR}/test-tmp)
  set_tests_properties(test_header_cxx PROPERTIES LABELS "quick" TIMEOUT 300)
endif()
# The command blocks of README.md and docs/*.md (tests/test_docs.py states the rule): `sh`
# blocks run here; `sh slow` ones with -DZOFF_DOCS_SLOW=ON (minutes: benchmarks, the full demo;
# .ci/run turns it on after `make test`).
find_package(Python3 COMPONENTS Interpreter QUIET)
option(ZOFF_DOCS_SLOW "Also run the docs' slow command blocks (test_docs_slow)" OFF)
if(Python3_Interpreter_FOUND)
  add_test(NAME test_docs COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_docs.py
           ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR} quick)
  set_tests_properties(test_docs PROPERTIES LABELS "quick" TIMEOUT 600
                       ENVIRONMENT "ZOFF_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp")
  if(ZOFF_DOCS_SLOW)
    add_test(NAME test_docs_slow
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_docs.py
             ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR} slow)
    set_tests_properties(test_docs_slow PROPERTIES LABELS "slow" TIMEOUT 3600
                         ENVIRONMENT "ZOFF_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp")
  endif()
endif()
