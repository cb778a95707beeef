/*
 * log.c — leveled, subsystem-filtered logging (ZOFF_DEBUG, ZOFF_DEBUG_SUBSYS, ZOFF_DEBUG_FILE).
 * Lines look like "zoff WARN [NVME] message" on stderr (or the file). Settings are read once;
 * zoff__log_reinit() re-reads them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static struct {
    pthread_once_t once;
    int level;
    unsigned mask;
    FILE *out;
    pthread_mutex_t mu;
    uint64_t t0_ns;
} g_log = {PTHREAD_ONCE_INIT, ZOFF_LOG_WARN, ZOFF_SUB_ALL, NULL, PTHREAD_MUTEX_INITIALIZER, 0};

static const struct {
    const char *name;
    unsigned bit;
} subsys_names[] = {
    {"INIT", ZOFF_SUB_INIT}, {"ALLOC", ZOFF_SUB_ALLOC}, {"PIN", ZOFF_SUB_PIN},
    {"NVME", ZOFF_SUB_NVME}, {"ADAM", ZOFF_SUB_ADAM},   {"XFER", ZOFF_SUB_XFER},
    {"STEP", ZOFF_SUB_STEP}, {"CKPT", ZOFF_SUB_CKPT},   {"CONFIG", ZOFF_SUB_CONFIG},
    {"DEV", ZOFF_SUB_DEV},   {"ALL", ZOFF_SUB_ALL},
};

static unsigned parse_mask(const char *s)
{
    unsigned mask = 0, excl = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    int any_incl = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int neg = tok[0] == '^';
        if (neg) tok++;
        for (size_t i = 0; i < ZOFF_ARRAY_SIZE(subsys_names); i++) {
            if (strcasecmp(tok, subsys_names[i].name) == 0) {
                if (neg)
                    excl |= subsys_names[i].bit;
                else {
                    mask |= subsys_names[i].bit;
                    any_incl = 1;
                }
            }
        }
    }
    if (!any_incl) mask = ZOFF_SUB_ALL;
    return mask & ~excl;
}

static void log_init(void)
{
    const char *lv = zoff__param_str(ZOFF_PARAM_DEBUG);
    if (strcasecmp(lv, "NONE") == 0)
        g_log.level = ZOFF_LOG_NONE;
    else if (strcasecmp(lv, "INFO") == 0)
        g_log.level = ZOFF_LOG_INFO;
    else if (strcasecmp(lv, "TRACE") == 0)
        g_log.level = ZOFF_LOG_TRACE;
    else
        g_log.level = ZOFF_LOG_WARN;
    g_log.mask = parse_mask(zoff__param_str(ZOFF_PARAM_DEBUG_SUBSYS));
    const char *file = zoff__param_str(ZOFF_PARAM_DEBUG_FILE);
    if (g_log.out && g_log.out != stderr) fclose(g_log.out);
    g_log.out = stderr;
    if (file[0]) {
        FILE *f = fopen(file, "a");
        if (f) g_log.out = f;
    }
    g_log.t0_ns = zoff__now_ns();
}

zoff_log_level zoff__log_level(void)
{
    pthread_once(&g_log.once, log_init);
    return (zoff_log_level)g_log.level;
}

int zoff__log_enabled(zoff_log_level lvl, unsigned subsys)
{
    pthread_once(&g_log.once, log_init);
    return (int)lvl <= g_log.level && (g_log.mask & subsys) != 0;
}

void zoff__log_reinit(void)
{
    pthread_once(&g_log.once, log_init);
    pthread_mutex_lock(&g_log.mu);
    log_init();
    pthread_mutex_unlock(&g_log.mu);
}

static const char *subsys_name(unsigned subsys)
{
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(subsys_names); i++)
        if (subsys_names[i].bit == subsys) return subsys_names[i].name;
    return "ALL";
}

void zoff__log(zoff_log_level lvl, unsigned subsys, const char *file, int line, const char *fmt,
               ...)
{
    static const char *lvl_names[] = {"NONE", "WARN", "INFO", "TRACE"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    pthread_mutex_lock(&g_log.mu);
    if (g_log.level >= ZOFF_LOG_TRACE)
        fprintf(g_log.out, "zoff %s [%s] %.3f %s:%d %s\n", lvl_names[lvl], subsys_name(subsys),
                (double)(zoff__now_ns() - g_log.t0_ns) / 1e9, base, line, msg);
    else
        fprintf(g_log.out, "zoff %s [%s] %s\n", lvl_names[lvl], subsys_name(subsys), msg);
    fflush(g_log.out);
    pthread_mutex_unlock(&g_log.mu);
}
