# offload/ (host memory): the pinned arena (sizes, sub-allocator, pinning and its fallback,
# huge pages, NUMA binding) and the topology choice on synthetic hwloc machines.
zoff_add_test(NAME test_arena SOURCES test_arena.c MODULES offload LABELS quick TIMEOUT 120)
zoff_add_test(NAME test_topo SOURCES test_topo.c MODULES offload LABELS quick TIMEOUT 60)
# What pinning 1 GiB costs with 4 KiB pages and with THP (prints GB/s; 6 GiB faulted in total).
zoff_add_test(NAME test_arena_speed SOURCES test_arena_speed.c MODULES offload LABELS slow
              TIMEOUT 300)
# `zoff info` end to end (tools/cmd_info.c): runs the zoff binary and checks its JSON.
if(TARGET zoff)
  zoff_add_test(NAME test_topo_info SOURCES test_topo_info.c MODULES offload
                LIBS ${CJSON_LINK_LIBRARIES} ARGS $<TARGET_FILE:zoff> LABELS quick TIMEOUT 60)
  add_dependencies(test_topo_info zoff)
endif()
