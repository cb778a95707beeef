/*
 * kernels.cu — the CUDA kernels of the device interface: cast fp32 -> fp16/bf16/fp32, widen
 * fp16/bf16/fp32 -> fp32, scale,
 * fill (grid-stride loops over gpu/elem.h, templated on the dtype so the element branch folds
 * away) and busy (one thread spinning on clock64). Owns nothing but the launchers declared in
 * kernels.h. Compiled only with the CUDA backend (ZOFF_CUDA); never run on a GPU in this
 * project's CI (there is none), its element math is tested on the host through the sim backend.
 */
#include <cuda_runtime.h>

#include "gpu/cuda/kernels.h"
#include "gpu/elem.h"

namespace
{

constexpr int kThreads = 256;
constexpr size_t kMaxBlocks = 8192;

unsigned blocks_for(size_t n)
{
    size_t b = (n + kThreads - 1) / kThreads;
    return (unsigned)(b < kMaxBlocks ? b : kMaxBlocks);
}

template <int DT> __global__ void cast_kernel(void *dst, const float *src, size_t n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        zdev_elem_cast(dst, DT, src, i);
}

template <int DT> __global__ void widen_kernel(float *dst, const void *src, size_t n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        zdev_elem_widen(dst, src, DT, i);
}

template <int DT> __global__ void scale_kernel(void *x, size_t n, float alpha)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        zdev_elem_scale(x, DT, i, alpha);
}

template <int DT> __global__ void fill_kernel(void *x, size_t n, float value)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        zdev_elem_fill(x, DT, i, value);
}

__global__ void busy_kernel(long long cycles)
{
    long long start = clock64();
    while (clock64() - start < cycles) {
    }
}

} // namespace

extern "C" cudaError_t zdev__cuda_launch_cast(void *dst, int dtype, const float *src, size_t n,
                                              cudaStream_t stream)
{
    unsigned b = blocks_for(n);
    switch (dtype) {
    case ZOFF_DTYPE_F32:
        cast_kernel<ZOFF_DTYPE_F32><<<b, kThreads, 0, stream>>>(dst, src, n);
        break;
    case ZOFF_DTYPE_F16:
        cast_kernel<ZOFF_DTYPE_F16><<<b, kThreads, 0, stream>>>(dst, src, n);
        break;
    case ZOFF_DTYPE_BF16:
        cast_kernel<ZOFF_DTYPE_BF16><<<b, kThreads, 0, stream>>>(dst, src, n);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t zdev__cuda_launch_widen(float *dst, const void *src, int src_dtype, size_t n,
                                               cudaStream_t stream)
{
    unsigned b = blocks_for(n);
    switch (src_dtype) {
    case ZOFF_DTYPE_F32:
        widen_kernel<ZOFF_DTYPE_F32><<<b, kThreads, 0, stream>>>(dst, src, n);
        break;
    case ZOFF_DTYPE_F16:
        widen_kernel<ZOFF_DTYPE_F16><<<b, kThreads, 0, stream>>>(dst, src, n);
        break;
    case ZOFF_DTYPE_BF16:
        widen_kernel<ZOFF_DTYPE_BF16><<<b, kThreads, 0, stream>>>(dst, src, n);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t zdev__cuda_launch_scale(void *x, int dtype, size_t n, float alpha,
                                               cudaStream_t stream)
{
    unsigned b = blocks_for(n);
    switch (dtype) {
    case ZOFF_DTYPE_F32:
        scale_kernel<ZOFF_DTYPE_F32><<<b, kThreads, 0, stream>>>(x, n, alpha);
        break;
    case ZOFF_DTYPE_F16:
        scale_kernel<ZOFF_DTYPE_F16><<<b, kThreads, 0, stream>>>(x, n, alpha);
        break;
    case ZOFF_DTYPE_BF16:
        scale_kernel<ZOFF_DTYPE_BF16><<<b, kThreads, 0, stream>>>(x, n, alpha);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t zdev__cuda_launch_fill(void *x, int dtype, size_t n, float value,
                                              cudaStream_t stream)
{
    unsigned b = blocks_for(n);
    switch (dtype) {
    case ZOFF_DTYPE_F32:
        fill_kernel<ZOFF_DTYPE_F32><<<b, kThreads, 0, stream>>>(x, n, value);
        break;
    case ZOFF_DTYPE_F16:
        fill_kernel<ZOFF_DTYPE_F16><<<b, kThreads, 0, stream>>>(x, n, value);
        break;
    case ZOFF_DTYPE_BF16:
        fill_kernel<ZOFF_DTYPE_BF16><<<b, kThreads, 0, stream>>>(x, n, value);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t zdev__cuda_launch_busy(long long cycles, cudaStream_t stream)
{
    busy_kernel<<<1, 1, 0, stream>>>(cycles);
    return cudaGetLastError();
}
