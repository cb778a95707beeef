/*
 * config.h — runtime-internal configuration helpers behind zoff_config_default /
 * zoff_config_from_json: environment overrides and validation with messages naming the key.
 * Implemented in runtime/config.c; docs/config.md lists every key and variable.
 * All functions are thread-safe on distinct structs and change *cfg only on success.
 */
#ifndef ZOFF_RUNTIME_CONFIG_H
#define ZOFF_RUNTIME_CONFIG_H

#include <stddef.h>

#include "common/common.h"

/* Applies ZOFF_* environment overrides (device, sim, aio, cpu isa/threads, numa, trace) to cfg.
 * A malformed value returns ZOFF_ECONFIG naming the variable ("ZOFF_DEVICE: expected ...").
 * Does not validate the rest of cfg (call zoff__config_validate after it). */
zoff_status zoff__config_apply_env(zoff_config *cfg);
/* Checks ranges and consistency (fp16 and bf16 both on, ratio outside [0,1], buffer_count < 3
 * with nvme, nvme tier without nvme_path, struct_size not set by zoff_config_default, ...).
 * ZOFF_ECONFIG with a message naming the field by its JSON key. */
zoff_status zoff__config_validate(const zoff_config *cfg);
/* Checks one group's hyperparameters (for zoff_add_group / zoff_set_group): ZOFF_ECONFIG with
 * the message naming "<path>.lr", "<path>.betas[1]", ... (path: "optimizer.params", "group 2"). */
zoff_status zoff__group_config_validate(const zoff_group_config *g, const char *path);
/* Parses an already-loaded JSON text over the values already in *cfg (callers start from
 * zoff_config_default), then validates the result; `origin` names the file in messages. A text
 * of only whitespace leaves the values as they are. On error *cfg is unchanged. */
zoff_status zoff__config_parse(zoff_config *cfg, const char *json, const char *origin);
/* The same with the trainer's values for "auto" (NULL: none supplied). */
zoff_status zoff__config_parse_with(zoff_config *cfg, const char *json, const char *origin,
                                    const zoff_trainer_values *tv);
/* Checks a schedule's parameters (ZOFF_ECONFIG naming scheduler.params.<key>). */
zoff_status zoff__scheduler_validate(const zoff_scheduler_config *s);
/* The double of the shortest decimal that reads back as the float f (JSON output of config and
 * checkpoint manifests: 1e-3f is written "0.001"). */
double zoff__float_json(float f);
/* Writes cfg as a JSON object (DeepSpeed keys + zoff keys) into buf (NUL-terminated, truncated
 * to len - 1 characters); returns the length of the whole text (snprintf style: retry with a
 * larger buffer when >= len), 0 on allocation failure. zoff__config_parse reads it back to the
 * same values. */
size_t zoff__config_to_json(const zoff_config *cfg, char *buf, size_t len);

/* DeepSpeed keys zoff accepts but does not act on (runtime/ds_keys.c, the one table of them). */
typedef enum zoff__ds_type {
    DS_BOOL,
    DS_INT,
    DS_NUMBER,
    DS_STRING,
    DS_LIST,
    DS_OBJECT, /* a section: its keys are listed as "<path>.<key>" */
    DS_ANY,
    DS_OPAQUE, /* a section accepted whole (its keys are not checked) */
} zoff__ds_type;

typedef struct zoff__ds_key {
    const char *path;   /* "zero_optimization.stage3_max_live_parameters" */
    zoff__ds_type type; /* what DeepSpeed's schema expects */
    const char *note;   /* what zoff does instead (the warning's text) */
} zoff__ds_key;

/* The entry for a full key path, or NULL. */
const zoff__ds_key *zoff__ds_key_find(const char *path);
/* The whole table, ending with a NULL path (tests walk it). */
const zoff__ds_key *zoff__ds_keys(void);
/* Where a full key path goes: 1 it takes effect (config.c's tables), 0 accepted and ignored
 * with a warning (ds_keys.c), -1 unknown (an error). For tests/test_ds_config.c. */
int zoff__config_key_status(const char *path);

#endif /* ZOFF_RUNTIME_CONFIG_H */
