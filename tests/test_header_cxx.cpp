/*
 * test_header_cxx.cpp — include/zoff.h in C++: compiled by tests/install.cmake with g++
 * -std=c++11, c++14, c++17 and c++20 under -Wall -Wextra -pedantic -Werror (the *_INIT macros
 * are designated initialisers in C only; C++ gets the zoff_*_init() functions), then run.
 */
#include <zoff.h>
int main()
{
    zoff_step_result r = ZOFF_STEP_RESULT_INIT;
    zoff_step_args a = ZOFF_STEP_ARGS_INIT;
    zoff_stats s = ZOFF_STATS_INIT;
    zoff_config c;
    zoff_config_default(&c);
    return (int)(r.struct_size + a.struct_size + s.struct_size) == 0;
}
