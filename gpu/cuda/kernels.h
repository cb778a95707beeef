/*
 * kernels.h — gpu/cuda-internal: the launchers of the device kernels in kernels.cu, callable
 * from C (gpu/cuda/cuda.c). Each queues one kernel on `stream` and returns the launch status
 * (cudaGetLastError after the launch); the caller converts errors to zoff status codes.
 * The element math is gpu/elem.h, the same functions the sim backend runs on the host.
 */
#ifndef ZOFF_GPU_CUDA_KERNELS_H
#define ZOFF_GPU_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dst[i] = round_dtype(src[i]) for i < n; dtype is a zoff_dtype. */
cudaError_t zdev__cuda_launch_cast(void *dst, int dtype, const float *src, size_t n,
                                   cudaStream_t stream);
/* dst[i] = float(src[i]) for i < n; src_dtype is a zoff_dtype (exact). */
cudaError_t zdev__cuda_launch_widen(float *dst, const void *src, int src_dtype, size_t n,
                                    cudaStream_t stream);
/* x[i] = round_dtype(x[i] * alpha). */
cudaError_t zdev__cuda_launch_scale(void *x, int dtype, size_t n, float alpha, cudaStream_t stream);
/* x[i] = round_dtype(value). */
cudaError_t zdev__cuda_launch_fill(void *x, int dtype, size_t n, float value, cudaStream_t stream);
/* One thread spinning on clock64() for `cycles` SM clock cycles (stand-in compute). */
cudaError_t zdev__cuda_launch_busy(long long cycles, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_GPU_CUDA_KERNELS_H */
