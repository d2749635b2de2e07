// racecheck-named-barrier.cu — a check of compute-sanitizer itself (docs/BENCH_KPP.md, Racecheck):
// nvcc -arch=sm_90a -o /tmp/race scripts/racecheck-named-barrier.cu && compute-sanitizer --tool racecheck /tmp/race
// reported 0 hazards on an H200 (2026-11-27): racecheck follows this barrier pattern.
// Does racecheck see __syncthreads ordering when 8 warps also use bar.sync 1,256 and a 9th warp reads the other half of a double buffer?
#include <cstdio>
__device__ __forceinline__ void cb() { asm volatile("bar.sync 1, 256;" ::: "memory"); }
__global__ void k(float *out, int nsub)
{
    __shared__ float buf[2][512];
    __shared__ int list[256];
    const int tid = threadIdx.x;
    double run = 0;
    for (int s = 0; s <= nsub; s++) {
        if (tid < 256) {
            if (s < nsub) {
                list[tid] = tid + s;
                cb();
                buf[s & 1][tid] = (float)list[(tid + 1) % 256];
                buf[s & 1][tid + 256] = (float)s;
                cb();
            }
        } else if (s > 0 && tid - 256 < 8) {
            for (int p = 0; p < 512; p++) run += buf[(s - 1) & 1][p];
        }
        __syncthreads();
    }
    if (tid >= 256) out[tid - 256] = (float)run;
}
int main()
{
    float *o;
    cudaMalloc(&o, 32 * 4);
    k<<<2, 288>>>(o, 8);
    cudaDeviceSynchronize();
    printf("micro: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 0;
}
