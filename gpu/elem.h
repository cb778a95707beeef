/*
 * elem.h — the element math of the device kernels (cast fp32 -> fp16/bf16/fp32, widen to fp32,
 * scale, fill),
 * written once as ZOFF_HD functions: the sim backend (gpu/sim.c) calls them on the host and the
 * CUDA kernels (gpu/cuda/kernels.cu) call them on the GPU, so the host tests check the code the
 * GPU runs. Rounding is that of common/half.h (round to nearest even, NaN quieted, no flush of
 * subnormals). Header-only; owns no state.
 */
#ifndef ZOFF_GPU_ELEM_H
#define ZOFF_GPU_ELEM_H

#include <stddef.h>
#include <stdint.h>

#include "common/half.h"
#include "zoff.h"

/* Element i of x (dtype F32, F16 or BF16) as fp32 (exact). An unknown dtype reads 0. */
ZOFF_HD float zdev_elem_load(const void *x, int dtype, size_t i)
{
    if (dtype == ZOFF_DTYPE_F32) return ((const float *)x)[i];
    if (dtype == ZOFF_DTYPE_F16) return zoff_f16_to_f32(((const uint16_t *)x)[i]);
    if (dtype == ZOFF_DTYPE_BF16) return zoff_bf16_to_f32(((const uint16_t *)x)[i]);
    return 0.0f;
}

/* Stores v into element i of x, rounded to dtype (nearest even). An unknown dtype stores
 * nothing (callers validate the dtype before launching). */
ZOFF_HD void zdev_elem_store(void *x, int dtype, size_t i, float v)
{
    if (dtype == ZOFF_DTYPE_F32)
        ((float *)x)[i] = v;
    else if (dtype == ZOFF_DTYPE_F16)
        ((uint16_t *)x)[i] = zoff_f32_to_f16(v);
    else if (dtype == ZOFF_DTYPE_BF16)
        ((uint16_t *)x)[i] = zoff_f32_to_bf16(v);
}

/* dst[i] = round_dtype(src[i]): the cast kernel's body. */
ZOFF_HD void zdev_elem_cast(void *dst, int dst_dtype, const float *src, size_t i)
{
    zdev_elem_store(dst, dst_dtype, i, src[i]);
}

/* dst[i] = float(src[i]) (exact): the widen kernel's body. */
ZOFF_HD void zdev_elem_widen(float *dst, const void *src, int src_dtype, size_t i)
{
    dst[i] = zdev_elem_load(src, src_dtype, i);
}

/* x[i] = round_dtype(float(x[i]) * alpha), the product taken in fp32: the scale kernel's body. */
ZOFF_HD void zdev_elem_scale(void *x, int dtype, size_t i, float alpha)
{
    zdev_elem_store(x, dtype, i, zdev_elem_load(x, dtype, i) * alpha);
}

/* x[i] = round_dtype(value): the fill kernel's body. */
ZOFF_HD void zdev_elem_fill(void *x, int dtype, size_t i, float value)
{
    zdev_elem_store(x, dtype, i, value);
}

#endif /* ZOFF_GPU_ELEM_H */
