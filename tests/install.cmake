# Install + out-of-tree consumer (find_package and pkg-config). Label slow: it installs the tree.
add_test(NAME test_install
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_install.sh ${CMAKE_BINARY_DIR}
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/test-tmp/install)
set_tests_properties(test_install PROPERTIES LABELS "slow" TIMEOUT 600)
