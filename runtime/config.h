/*
 * config.h — runtime-internal configuration helpers behind zoff_config_default /
 * zoff_config_from_json: environment overrides and validation with messages naming the key.
 */
#ifndef ZOFF_RUNTIME_CONFIG_H
#define ZOFF_RUNTIME_CONFIG_H

#include "common/common.h"

/* Applies ZOFF_* environment overrides (device, sim, aio, cpu isa/threads, numa, trace) to cfg. */
zoff_status zoff__config_apply_env(zoff_config *cfg);
/* Checks ranges and consistency (fp16 and bf16 both on, ratio outside [0,1], buffer_count < 3
 * with nvme, nvme tier without nvme_path, ...). ZOFF_ECONFIG with a message naming the field by
 * its JSON key. */
zoff_status zoff__config_validate(const zoff_config *cfg);
/* Parses an already-loaded JSON text; `origin` names the file in messages. */
zoff_status zoff__config_parse(zoff_config *cfg, const char *json, const char *origin);
/* Writes cfg as a JSON object (DeepSpeed keys + zoff keys) into buf; returns bytes needed. */
size_t zoff__config_to_json(const zoff_config *cfg, char *buf, size_t len);

#endif /* ZOFF_RUNTIME_CONFIG_H */
