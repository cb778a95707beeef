# train.cmake — tests of the example GPT model and of `zoff train` (issue #6).
#   test_gpt_grad: the model alone (compiled from examples/gpt/model.c, no runtime): gradient
#                  check against finite differences, stage order, loss scale, determinism.
zoff_add_test(NAME test_gpt_grad
              SOURCES test_gpt_grad.c ${CMAKE_SOURCE_DIR}/examples/gpt/model.c
                      ${CMAKE_SOURCE_DIR}/examples/gpt/data.c
              MODULES common LIBS OpenMP::OpenMP_C m LABELS quick TIMEOUT 120)
target_include_directories(test_gpt_grad PRIVATE ${CMAKE_SOURCE_DIR}/examples/gpt)
#   test_train:    runs the `zoff` binary on a tiny model (test_train.c, mode in argv[2]):
#                  cli (quick): errors, --help, demo config, --until; loss_<tier>_<dtype> (slow):
#                  the loss falls; resume (slow): 2N vs N + resume + N bit-identical (also
#                  resume_delayed: --overlap delayed, resumed past and inside the warm-up); sigint:
#                  Ctrl-C gives a loadable checkpoint and exit 130.
if(TARGET zoff_gpt AND TARGET zoff)
  zoff_add_test(NAME test_train SOURCES test_train.c LIBS zoff_gpt ${CJSON_LINK_LIBRARIES}
                LABELS quick ARGS $<TARGET_FILE:zoff> cli TIMEOUT 300)
  target_compile_definitions(test_train PRIVATE ZOFF_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  add_dependencies(test_train zoff)
  foreach(tier cpu nvme)
    foreach(dtype fp16 bf16)
      set(labels slow)
      if(tier STREQUAL "nvme")
        list(APPEND labels nvme)
      endif()
      zoff_add_test_variant(NAME test_train_loss_${tier}_${dtype} EXE test_train
                            ARGS $<TARGET_FILE:zoff> loss ${tier} ${dtype} LABELS ${labels}
                            TIMEOUT 600)
    endforeach()
  endforeach()
  zoff_add_test_variant(NAME test_train_resume EXE test_train ARGS $<TARGET_FILE:zoff> resume
                        LABELS slow nvme TIMEOUT 600)
  zoff_add_test_variant(NAME test_train_resume_delayed EXE test_train
                        ARGS $<TARGET_FILE:zoff> resume_delayed LABELS slow nvme TIMEOUT 600)
  zoff_add_test_variant(NAME test_train_sigint EXE test_train ARGS $<TARGET_FILE:zoff> sigint
                        LABELS nvme TIMEOUT 300)
  #                q8 (slow): 300 steps with q8 moments end within 5% of the fp32-moment loss.
  zoff_add_test_variant(NAME test_train_q8_state EXE test_train ARGS $<TARGET_FILE:zoff> q8
                        LABELS slow TIMEOUT 1200)
endif()
# test_ds_train: DeepSpeed configs from DeepSpeed's docs and the HF integration
# (examples/configs/deepspeed/) run to the end with one warning per ignored key; the CLI checks.
if(TARGET zoff)
  foreach(cfg "zero2_cpu_offload;7" "zero3_nvme_offload;18" "hf_auto;7" "bf16_scheduler;7")
    list(GET cfg 0 name)
    list(GET cfg 1 expect)
    zoff_add_test_variant(NAME test_ds_train_${name} EXE sh
                          ARGS ${CMAKE_CURRENT_SOURCE_DIR}/test_ds_train.sh $<TARGET_FILE:zoff>
                               ${CMAKE_SOURCE_DIR} config ${name} ${expect}
                          LABELS quick TIMEOUT 120)
  endforeach()
  zoff_add_test_variant(NAME test_ds_train_cli EXE sh
                        ARGS ${CMAKE_CURRENT_SOURCE_DIR}/test_ds_train.sh $<TARGET_FILE:zoff>
                             ${CMAKE_SOURCE_DIR} cli
                        LABELS quick TIMEOUT 300)
endif()
