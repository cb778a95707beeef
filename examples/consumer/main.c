/*
 * main.c — smallest program using an installed libzoff through include/zoff.h only: checks the
 * header against the library version, creates and destroys a runtime on the sim device.
 */
#include <stdio.h>
#include <string.h>

#include <zoff.h>

int main(void)
{
    if (zoff_version_number() != ZOFF_VERSION_NUMBER) {
        fprintf(stderr, "header %d != library %d\n", ZOFF_VERSION_NUMBER, zoff_version_number());
        return 1;
    }
    zoff_config cfg;
    zoff_status st = zoff_config_default(&cfg);
    if (st != ZOFF_OK) {
        fprintf(stderr, "zoff_config_default: %s\n", zoff_strerror(st));
        return 1;
    }
    /* a runtime really opens (sim device): the whole library links, not just a few symbols */
    cfg.device = ZOFF_DEVICE_SIM;
    zoff_runtime *rt = NULL;
    st = zoff_create(&cfg, &rt);
    if (st != ZOFF_OK) {
        fprintf(stderr, "zoff_create: %s\n", zoff_last_error(NULL));
        return 1;
    }
    zoff_destroy(rt);
    printf("zoff %s, default tier %s, %s = %d\n", zoff_version(),
           cfg.tier == ZOFF_TIER_CPU ? "cpu" : "nvme", zoff_status_name(ZOFF_ECORRUPT),
           ZOFF_ECORRUPT);
    return strcmp(zoff_status_name(ZOFF_ECORRUPT), "ZOFF_ECORRUPT") == 0 ? 0 : 1;
}
