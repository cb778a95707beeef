# The public face for front ends (#11): test_public_face uses only include/zoff.h and links the
# shared library (public symbols only): checkpoints without a runtime, the env iterator, the
# machine probe. tools/ compile with only include/ on their include path (tools/CMakeLists.txt),
# so an internal include there fails the build itself.
add_executable(test_public_face test_public_face.c)
set_property(TARGET test_public_face PROPERTY INCLUDE_DIRECTORIES ${CMAKE_SOURCE_DIR}/include
                                                                  ${CMOCKA_INCLUDE_DIRS})
target_link_libraries(test_public_face PRIVATE zoff_shared ${CMOCKA_LINK_LIBRARIES})
add_test(NAME test_public_face COMMAND test_public_face)
set_tests_properties(test_public_face PROPERTIES LABELS "quick" SKIP_RETURN_CODE 77 TIMEOUT 120
                     ENVIRONMENT "ZOFF_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp")
