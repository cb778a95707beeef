/*
 * status.c — status names and descriptions (generated from ZOFF_STATUS_LIST), the version and
 * dtype helpers of the public API, and the thread-local last-error message.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"

ZOFF_API const char *zoff_version(void)
{
    return "0.1.0";
}

ZOFF_API int zoff_version_number(void)
{
    return ZOFF_VERSION_NUMBER;
}

ZOFF_API const char *zoff_strerror(zoff_status st)
{
    switch (st) {
#define ZOFF__STATUS_DESC(name, value, desc)                                                       \
    case value:                                                                                    \
        return desc;
        ZOFF_STATUS_LIST(ZOFF__STATUS_DESC)
#undef ZOFF__STATUS_DESC
    default:
        break;
    }
    if (st < 0 && st > -4096) return strerror(-st); /* glibc: static, thread-safe for valid codes */
    return "unknown status";
}

/* errno names for the codes zoff passes through most often. */
#define ZOFF__ERRNO(x)                                                                             \
    {                                                                                              \
        x, #x                                                                                      \
    }
static const struct {
    int code;
    const char *name;
} errno_names[] = {
    ZOFF__ERRNO(EPERM),     ZOFF__ERRNO(ENOENT),     ZOFF__ERRNO(EINTR),
    ZOFF__ERRNO(EIO),       ZOFF__ERRNO(EBADF),      ZOFF__ERRNO(EAGAIN),
    ZOFF__ERRNO(ENOMEM),    ZOFF__ERRNO(EACCES),     ZOFF__ERRNO(EFAULT),
    ZOFF__ERRNO(EBUSY),     ZOFF__ERRNO(EEXIST),     ZOFF__ERRNO(ENOTDIR),
    ZOFF__ERRNO(EISDIR),    ZOFF__ERRNO(EINVAL),     ZOFF__ERRNO(ENFILE),
    ZOFF__ERRNO(EMFILE),    ZOFF__ERRNO(EFBIG),      ZOFF__ERRNO(ENOSPC),
    ZOFF__ERRNO(ESPIPE),    ZOFF__ERRNO(EROFS),      ZOFF__ERRNO(ERANGE),
    ZOFF__ERRNO(ENOSYS),    ZOFF__ERRNO(EOPNOTSUPP), ZOFF__ERRNO(ETIMEDOUT),
    ZOFF__ERRNO(ECANCELED), ZOFF__ERRNO(EOVERFLOW),  ZOFF__ERRNO(ENAMETOOLONG),
    ZOFF__ERRNO(EDQUOT),    ZOFF__ERRNO(ENOTEMPTY),
};
#undef ZOFF__ERRNO

static const char *errno_name(int e)
{
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(errno_names); i++)
        if (errno_names[i].code == e) return errno_names[i].name;
    return NULL;
}

ZOFF_API const char *zoff_status_name(zoff_status st)
{
    switch (st) {
#define ZOFF__STATUS_NAME(name, value, desc)                                                       \
    case value:                                                                                    \
        return #name;
        ZOFF_STATUS_LIST(ZOFF__STATUS_NAME)
#undef ZOFF__STATUS_NAME
    default:
        break;
    }
    if (st < 0) {
        const char *n = errno_name(-st);
        if (n) return n;
        return "errno";
    }
    return "unknown";
}

ZOFF_API size_t zoff_dtype_size(zoff_dtype dt)
{
    switch (dt) {
    case ZOFF_DTYPE_F32:
        return 4;
    case ZOFF_DTYPE_F16:
    case ZOFF_DTYPE_BF16:
        return 2;
    }
    return 0;
}

ZOFF_API const char *zoff_dtype_name(zoff_dtype dt)
{
    switch (dt) {
    case ZOFF_DTYPE_F32:
        return "f32";
    case ZOFF_DTYPE_F16:
        return "f16";
    case ZOFF_DTYPE_BF16:
        return "bf16";
    }
    return "?";
}

/* ---- last error ------------------------------------------------------------------------- */
static _Thread_local char tls_err[4096]; /* room for a config file's errors, one per line */

zoff_status zoff__err(zoff_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err, sizeof tls_err, fmt, ap);
    va_end(ap);
    ZOFF_INFO(ZOFF_SUB_ALL, "error %s: %s", zoff_status_name(st), tls_err);
    return st;
}

const char *zoff__last_error_tls(void)
{
    return tls_err;
}

void zoff__clear_error(void)
{
    tls_err[0] = '\0';
}
