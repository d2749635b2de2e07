/* device.cu — device discovery and CUDA error reporting for the backend. */
#include "cuda/common.cuh"

fkm_status fkm_cuda_fail(fkm_ctx *ctx, cudaError_t err, const char *file, int line, const char *what)
{
    (void)cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
    fkm_status s = FKM_E_DEVICE;
    if (err == cudaErrorMemoryAllocation) s = FKM_E_NOMEM;
    else if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) s = FKM_E_NO_DEVICE;
    /* show the path from src/ on: enough to find the line, without the build machine's prefix */
    const char *short_file = strstr(file, "src/");
    return fkm_fail(ctx, s, "CUDA error at %s:%d in %s: %s (%s)", short_file ? short_file : file, line, what,
                    cudaGetErrorString(err), cudaGetErrorName(err));
}

cudaError_t fkm_cuda_allow_smem(const void *func, size_t need)
{
    int dev = 0, optin = 0;
    cudaFuncAttributes fa;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e == cudaSuccess) e = cudaFuncGetAttributes(&fa, func);
    if (e != cudaSuccess) return e;
    const size_t most = (size_t)optin > fa.sharedSizeBytes ? (size_t)optin - fa.sharedSizeBytes : 0;
    if (need > most) return cudaErrorInvalidValue; /* what the launch would report */
    return cudaFuncSetAttribute(func, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)most);
}

extern "C" int fkm_cuda_device_count_impl(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" fkm_status fkm_cuda_device_info_impl(int index, char *name, size_t cap, int *cc_major, int *cc_minor,
                                                uint64_t *memory_bytes)
{
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, index) != cudaSuccess) {
        (void)cudaGetLastError();
        return FKM_E_DEVICE;
    }
    if (name && cap > 0) {
        strncpy(name, p.name, cap - 1);
        name[cap - 1] = '\0';
    }
    if (cc_major) *cc_major = p.major;
    if (cc_minor) *cc_minor = p.minor;
    if (memory_bytes) *memory_bytes = (uint64_t)p.totalGlobalMem;
    return FKM_OK;
}
