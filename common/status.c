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
static const char *errno_name(int e)
{
    switch (e) {
#define E(x)                                                                                       \
    case x:                                                                                        \
        return #x;
        E(EPERM)
        E(ENOENT) E(EINTR) E(EIO) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY)
            E(EEXIST) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(EFBIG) E(ENOSPC)
                E(ESPIPE) E(EROFS) E(ERANGE) E(ENOSYS) E(EOPNOTSUPP) E(ETIMEDOUT) E(ECANCELED)
                    E(EOVERFLOW) E(ENAMETOOLONG) E(EDQUOT) E(ENOTEMPTY)
#undef E
                        default : return NULL;
    }
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
static _Thread_local char tls_err[1024];

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
