/* exact.cu — certified-exact assignment on the GPU (exact.cuh, docs/EXACTNESS.md 3.6 and 5).
 *
 * Per assignment, all on the stream with one host synchronisation in the common case:
 *   0. carried certificates (EXACTNESS.md 5.5; batch 1, l2 and dot, after the first
 *      assignment): each certified point's distance bounds move with the centroids
 *      (`centroid_moves`, `carry_points`); a point they still separate keeps its label and skips
 *      every stage below; when fewer than half are left, 1 runs on their rows only, gathered
 *      (`carry_step`), else on all;
 *   1. the tensor-core kernel's top-3 instantiation (mma or wgmma, the path fast mode would
 *      take) gives each point its label, its three smallest scores and the second's index;
 *   2. `certify` (one thread per point) applies fkm_cert_ok_pt (src/core/cert.h, the CPU's
 *      inline code) to (best, second), with the operand rounding measured per point and per
 *      centroid (EXACTNESS.md 5.2: ||xt - x|| once per call, ||ct - c|| and each problem's
 *      largest every assignment): certified, nothing more to do; else to (best, third):
 *      the exact argmin is then one of the two best centroids, and the point goes to the pair
 *      list; else to its problem's filter list;
 *   3. `pair_decide` (one warp per point of the pair list) computes the two double score
 *      intervals of section 4 and keeps the label or takes the second when they are apart;
 *   3b. the candidate pass (EXACTNESS.md 5.4; k >= EX_CAND_MIN_K, FLASHKM_EXACT_CAND): each
 *      problem's filter list in chunks, gathered with a threshold per point that every exact
 *      argmin's tensor-core score stays within; the tensor-core kernel lists the centroids
 *      within it (up to EX_CAND_CAP), `cand_decide` takes section 4's double intervals over
 *      them (one survivor: the label; several: the host), and what has more candidates goes
 *      back to the list for 4 and 5;
 *   4. `filter_tiles<.., F64 = false>` (work items of 64 points of a problem's filter list)
 *      scores every centroid with the CPU kernel's f32 arithmetic (EXACTNESS.md 3.1-3.4, from
 *      centroid tiles staged in shared memory) and certifies its top two with that kernel's
 *      much tighter bound (fkm_cert_cpu): most points end here;
 *   5. `filter_tiles<.., F64 = true>` (work items of 32 of what 4 left) computes every
 *      centroid's double interval (section 4 stage 1) and labels a point whose intervals
 *      leave one survivor;
 *      in 4 and 5 a short list is spread over the grid by splitting each point tile's
 *      centroids into slices of whole 128-centroid tiles (ex_slices: about gridDim.x / tiles
 *      slices, one for a long list; FLASHKM_EXACT_FILTER_SLICES forces a count for tests and
 *      A/B runs): each (point tile, slice) item stores its points' partial filter states
 *      (ex_state) in a fixed-size buffer, and `filter_merge` (a thread per point) merges a
 *      point's slices with the same exact min-type merge as the lanes of a warp and applies
 *      the same decision (ex_decide) that filter_tiles applies in place to an unsliced tile;
 *   6. what 3 and 5 cannot separate (near-ties at double precision, exact ties) lands in the
 *      host list, which the host sorts (so the work is in a fixed order), gathers as f32 rows
 *      in chunks and re-decides with fkm_exact_argmin_rows (src/core/exact.c, the CPU
 *      backend's code).
 * The lists are filled with atomics in no particular order and only used as sets: every
 * point's result depends on its own data alone (each kernel sums in a fixed order, and the
 * reductions across threads and across centroid slices are minima and comparisons, exact in
 * any order: ex_state), so the labels and counts are bitwise reproducible and do not depend on
 * the grid or the slicing. The change count is recounted against a copy of the previous
 * labels. Launching 3 to 5 with grids that read their list lengths on the device saves the
 * host round trips between the stages; with counts of zero they exit at once.
 *
 * Cosine (EXACTNESS.md 5.1) reuses the dot-product instantiations: the tensor-core pass scores
 * -x.C on the raw rows, `certify` widens the bound by fkm_cert_cos_extra (the normalisation's
 * rounding and the centroids' | ||C||^2 - 1 |), and every later stage reads the normalised row
 * y_j = fl32(fl64(x_j inv)) computed on the fly with the CPU's operations (inv per point, once
 * per call: no copy of X), then runs the l2 code on (y, C). */
#include "cuda/exact.cuh"
#include "cuda/mma.cuh" /* fkm_operand: the centroids' operand copy, whose rounding is measured here */

#include "core/exact.h" /* C declarations with their own extern "C"; cert.h's bound is inline */
#include "core/exact_filter.h"

#include <stdlib.h>
#include <string.h>
#include <type_traits>

/* counters (device; the first EX_C_FIXED also copied to the host) */
enum {
    EX_C_PAIR = 0,      /* points in the pair list */
    EX_C_PAIR_HOST = 1, /* ... of them sent on to the host */
    EX_C_FILTER = 2,    /* points in the filter lists (all problems) */
    EX_C_FILTER64 = 3,  /* ... of them left by the f32 filter for the double one */
    EX_C_HOST = 4,      /* points in the host list (the pair stage's and the filters') */
    EX_C_FIXED = 5      /* then the filter lists' lengths, one per problem, then the double
                           filter's likewise */
};

struct fkm_cuda_exact_ws {
    fkm_cert cert;     /* the tensor-core pass's bound */
    fkm_cert cert_f32; /* the f32 filter's (the CPU kernel's arithmetic) */
    int64_t n_total, k_total, chunk;
    int xnorm_ready;
    /* grids sized to fill the device, not by the lists */
    unsigned pair_blocks, f32_blocks, f64_blocks;
    /* the filters' centroid slicing (filter_tiles): FLASHKM_EXACT_FILTER_SLICES (0 = the
     * default rule, -1 = as many slices as centroid tiles, S > 0 = S), and per filter the
     * partial-state buffer's capacity in work items of one point tile per problem (0: no
     * buffer, never sliced) */
    int slices_force;
    int64_t part32_items, part64_items;
    /* device */
    int32_t *prev;             /* n_total: the labels before this assignment */
    float *best, *second, *third; /* n_total: the fast pass's three smallest scores */
    int32_t *second_idx;       /* n_total: the second's centroid */
    double *xnorm;             /* n_total: ||x|| in double */
    double *xdelta;            /* n_total: >= ||xt - x||, the x operand's rounding (EXACTNESS.md 5.2) */
    double *xinv;              /* n_total, cosine only: fkm_load_row's 1/sqrt(sum x_j^2), 0 for a zero row */
    double *cnorm, *cmax;      /* k_total, batch */
    double *cdelta, *cdmax;    /* k_total, batch: >= ||ct - c|| per centroid (5.2), each problem's largest */
    double *cmu, *mumax;       /* k_total, batch, cosine only: fkm_cert_cos_mu per centroid, its max */
    float *cbias;              /* k_total: fl32(sum c_j^2 in double), the f32 filter's bias */
    unsigned long long *count; /* EX_C_FIXED + 2 batch */
    int64_t *pair_idx;         /* n_total: the pair list (global point indices); reused for the
                                  host chunks' indices */
    int64_t *filt_idx;         /* n_total: problem b's filter list at b * n */
    int64_t *filt64_idx;       /* n_total: problem b's double-filter list at b * n */
    int64_t *host_idx;         /* n_total: the host list */
    void *part32, *part64;     /* batch x part*_items x P ex_state<float> / <double>: the
                                  sliced filters' partial states */
    /* the candidate pass (EXACTNESS.md 5.4; cand_rows == NULL: off): a chunk of up to
     * cand_chunk listed points at a time */
    int64_t cand_chunk, cand_ld;
    void *cand_rows;           /* cand_chunk x cand_ld: the listed rows in the input type */
    float *cand_thr;           /* cand_chunk: each row's threshold (rounded up) */
    int64_t *cand_pts;         /* cand_chunk: each row's point (global index) */
    unsigned *cand_cnt;        /* cand_chunk: candidates found */
    int32_t *cand_idx;         /* cand_chunk x EX_CAND_CAP */
    unsigned long long *cand_left; /* batch: points each problem leaves to the filters */
    /* carried certificates (EXACTNESS.md 5.5; carry == 0: off): per point the bounds of its
     * last certificate (lo > hi: valid), moved with the centroids; the centroids of the last
     * assignment, their moves and the largest; the points left to assign (compact). */
    int carry, carry_ready;
    /* the candidate pass runs (cand_wanted), on the mma.sync kernel (FLASHKM_CAND_KERNEL=mma);
     * read once, with the other knobs, when the workspace is made */
    int cand, cand_mma;
    double *clo, *chi;          /* n_total */
    float *cprev;              /* k_total x d */
    double *cmove, *cmove_max;  /* k_total, batch */
    unsigned char *carried;     /* n_total: 1 = kept its label without an assignment */
    int64_t *todo;              /* n_total: the points to assign, compact */
    void *glab_best;            /* cand_chunk x (4 + 4 + 4 + 4 + 4) bytes: the gathered pass's outputs */
    unsigned long long *flen_h;    /* batch (pinned): the filter lists' lengths */
    float *rows;               /* chunk x d: the host list's rows as f32 */
    int32_t *lab;              /* chunk: their exact labels */
    /* host (pinned) */
    unsigned long long *count_h; /* EX_C_FIXED */
    int64_t *idx_h;
    float *rows_h, *cent_h;
    int32_t *lab_h;
};

/* What the device stages read, by value. */
struct ex_args {
    const void *X;
    int64_t n, d, ld, bstride, k;
    const float *cent, *cbias;
    const double *xnorm, *cnorm, *cmax;
    const double *xinv; /* cosine: the rows' inverse norms (the stages read y); NULL otherwise */
    double rfac; /* fkm_exact_radius_factor(d) */
    fkm_cert cert_f32;
    const int32_t *second_idx;
    int32_t *labels;
    unsigned long long *count;
    const int64_t *pair_idx, *filt_idx;
    int64_t *filt64_idx, *host_idx;
    /* the filter stage launched with these arguments: its partial-state buffer (ex_state<float>
     * for the f32 filter, <double> for the double one), that buffer's capacity per problem in
     * work items of P states, and FLASHKM_EXACT_FILTER_SLICES (ws->slices_force) */
    void *part;
    int64_t part_items;
    int slices_force;
};

#define EX_CAND_CAP 32                        /* candidates kept per point; more: the filters */
#define EX_CAND_BYTES ((int64_t)32 << 20)      /* gathered rows per chunk of the candidate pass */
#define EX_CAND_MIN_K 1024                     /* the default: candidates from this many clusters */
#define EX_THREADS 256
#define EX_MAX_BLOCKS 4096
#define EX_CHUNK_BYTES ((int64_t)16 << 20) /* rows gathered per round trip: 16 MB of f32 */
/* The sliced filters' partial-state buffers (ex_slices): per filter, at most
 * max(EX_PART_ITEMS_PER_SM x SMs, EX_PART_ITEMS_MIN) work items over all problems, an item
 * being one point tile's states (64 x 16 or 32 x 32 bytes: 1 KiB either way), so about
 * 2 MiB per filter on 132 SMs; the default slicing needs at most its grid (4 blocks per SM). */
#define EX_PART_ITEMS_PER_SM 16
#define EX_PART_ITEMS_MIN 2048

/* filter_tiles: 8 warps; warp w owns points PP w .. PP w + PP - 1 of the tile, lane l
 * centroids l, l + 32, l + 64, l + 96 of the centroid tile; features staged FT_DC at a time.
 * PP = 8 for f32 (enough work per shared load to keep the FMA units busy), 4 for double. */
#define FT_CC 4                               /* centroids per thread */
#define FT_Q (FT_CC * 32)                     /* 128 centroids per tile */
#define FT_DC 16                              /* features per stage */
#define FT_PP_OF(F64) ((F64) ? 4 : 8)
#define FT_P_OF(F64) (FT_PP_OF(F64) * EX_THREADS / 32) /* 32 or 64 points per tile */

/* ---------------------------------------------------------------- kernels */

/* fkm_cert_elem_err (cert.h) of one element and its tensor-core operand (EXACTNESS.md 5.2).
 * x (OP = the input type): f32 input is rounded to TF32 by mma.sync (cvt.rna, mma.cuh) or
 * truncated by wgmma (the upper 19 bits): both within |x - rz(x)|, rz(x) = x with the 13 low
 * bits cleared; bf16 x is used as is; either may be flushed below 2^-126 (assumption (A'));
 * f16 x is used as is, subnormals kept (0). Centroids (OP = the operand type): the copy
 * prepare_centroids makes with the same fkm_operand (TF32 for f32 input), possibly flushed
 * for TF32 and bf16. */
template <typename OP> static __device__ __forceinline__ double ex_xop_err(float v)
{
    if (std::is_same<OP, __half>::value) return 0.0;
    const float vt = std::is_same<OP, float>::value ? __uint_as_float(__float_as_uint(v) & 0xffffe000u) : v;
    return fkm_cert_elem_err(v, vt, 1);
}
template <typename OP> static __device__ __forceinline__ double ex_cop_err(float v)
{
    const float vt = fkm_to_float(fkm_operand<OP>(v, std::is_same<OP, float>::value));
    return fkm_cert_elem_err(v, vt, !std::is_same<OP, __half>::value);
}

/* One warp per row: sqrt of the sum of squares in double (any order: EXACTNESS.md 3.5); with
 * bias != NULL also the sum rounded to f32 (the CPU kernel's bias, 3.3); with mu != NULL the
 * bound fkm_cert_cos_mu on | sum - 1 | (cosine, 5.1); with delta != NULL the bound
 * fkm_cert_delta on the rounding of the row to the operand type OP (5.2), of a centroid
 * (CENT) or of x. Lane-strided sums and a butterfly: a fixed order. */
template <typename T, typename OP, bool CENT>
__global__ void row_norms(const T *X, int64_t rows, int64_t d, int64_t ld, int64_t per_problem, int64_t bstride,
                          double *out, float *bias, double *mu, double *delta)
{
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (r >= rows) return;
    const T *x = X + (r / per_problem) * bstride + (r % per_problem) * ld;
    double s = 0.0, s_e = 0.0;
    for (int64_t j = lane; j < d; j += 32) {
        const float f = fkm_to_float(x[j]); /* exact: f32, f16 and bf16 values are f32 values */
        const double v = f;
        s += v * v;
        if (delta) {
            const double e = CENT ? ex_cop_err<OP>(f) : ex_xop_err<OP>(f);
            s_e += e * e;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        s += __shfl_xor_sync(0xffffffffu, s, o);
        s_e += __shfl_xor_sync(0xffffffffu, s_e, o);
    }
    if (lane == 0) {
        out[r] = sqrt(s);
        if (bias) bias[r] = (float)s;
        if (mu) mu[r] = fkm_cert_cos_mu(s, (double)d);
        if (delta) delta[r] = fkm_cert_delta(s_e);
    }
}

/* One warp per row: inv[r] = 1 / sqrt(sum_j x_j^2) exactly as fkm_load_row computes it (the
 * squares, exact in double, added in index order; correctly rounded sqrt and division), 0 for
 * a zero row, so that y_j = fl32(fl64(x_j inv)) is the CPU's normalised row bit for bit (a
 * zero row stays zero). Lanes load 32 consecutive features (coalesced); every lane then adds
 * them in order from the shuffles, so the order is the CPU's. The _rn intrinsics keep the
 * compiler from contracting or reassociating. */
template <typename T>
__global__ void row_inv_norms(const T *X, int64_t rows, int64_t d, int64_t ld, int64_t per_problem, int64_t bstride,
                              double *inv)
{
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (r >= rows) return; /* warp-uniform */
    const T *x = X + (r / per_problem) * bstride + (r % per_problem) * ld;
    double ss = 0.0;
    for (int64_t j0 = 0; j0 < d; j0 += 32) {
        const double v = j0 + lane < d ? fkm_to_double(x[j0 + lane]) : 0.0;
        const double sq = __dmul_rn(v, v); /* exact: 24-bit significands */
        const int m = d - j0 < 32 ? (int)(d - j0) : 32;
        for (int l = 0; l < m; l++) ss = __dadd_rn(ss, __shfl_sync(0xffffffffu, sq, l));
    }
    if (lane == 0) inv[r] = ss > 0.0 ? __ddiv_rn(1.0, __dsqrt_rn(ss)) : 0.0;
}

/* Element v of point i's row as the contract reads it (EXACTNESS.md 1): the stored value as
 * f32, or for cosine fl32(fl64(v inv)), fkm_load_row's two roundings. */
template <typename T>
static __device__ __forceinline__ float ex_value(T v, bool cosine, double inv)
{
    return cosine ? __double2float_rn(__dmul_rn(fkm_to_double(v), inv)) : fkm_to_float(v);
}

/* Appends the lanes of `mask` (all of which must call this) to a list counted by *counter,
 * one atomic per warp: returns this lane's slot. */
static __device__ __forceinline__ unsigned long long warp_slot(unsigned mask, unsigned long long *counter)
{
    const int lane = threadIdx.x & 31, leader = __ffs(mask) - 1;
    unsigned long long base = 0;
    if (lane == leader) base = atomicAdd(counter, (unsigned long long)__popc(mask));
    base = __shfl_sync(mask, base, leader);
    return base + (unsigned long long)__popc(mask & ((1u << lane) - 1u));
}

/* Sorts the points fkm_cert_ok cannot certify into the pair list (the exact argmin is
 * provably the label or the second, EXACTNESS.md 3.6; with k = 2 always) and the filter
 * lists (one per problem, for filter_tiles' centroid tiles). The loop is warp-uniform so that
 * whole warps vote. */
__global__ void certify(fkm_cert cert, const float *best, const float *second, const float *third,
                        const int32_t *labels, const double *xnorm, const double *xdelta, const double *cnorm,
                        const double *cdelta, const double *cmax, const double *cdmax, const double *mumax,
                        int64_t n_total, int64_t n, int64_t k, unsigned long long *count, int64_t *pair_idx,
                        int64_t *filt_idx, const unsigned char *carried, double *clo, double *chi)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i - (threadIdx.x & 31) < n_total; i += stride) {
        int kind = 0; /* 0 certified, 1 pair, 2 filter */
        int64_t b = 0;
        if (i < n_total && carried && carried[i]) {
            /* kept its label and its moved certificate (carry_points): nothing to do */
        } else if (i < n_total) {
            b = i / n;
            const int64_t c = b * k + labels[i];
            /* the norms and the measured operand rounding (EXACTNESS.md 5.2) */
            const fkm_cert_pt p = {xnorm[i], xdelta[i], cnorm[c], cdelta[c], cmax[b], cdmax[b]};
            const float s1 = best[i];
            /* cosine (mumax != NULL): the same two tests with the cosine bound (5.1) */
            const double mu = mumax ? mumax[b] : 0.0;
            const int ok2 = mumax ? fkm_cert_cos_ok_pt(&cert, s1, second[i], &p, mu)
                                  : fkm_cert_ok_pt(&cert, s1, second[i], &p);
            if (clo) { /* the certificate to carry (5.5), or none */
                fkm_carry cb;
                if (!(ok2 && fkm_cert_carry_init(&cert, s1, second[i], &p, &cb))) cb.lo = -INFINITY, cb.hi = INFINITY;
                clo[i] = cb.lo, chi[i] = cb.hi;
            }
            if (!ok2) {
                const int ok3 = mumax ? fkm_cert_cos_ok_pt(&cert, s1, third[i], &p, mu)
                                      : fkm_cert_ok_pt(&cert, s1, third[i], &p);
                kind = k == 2 || ok3 ? 1 : 2;
            }
        }
        const unsigned pm = __ballot_sync(0xffffffffu, kind == 1), fm = __ballot_sync(0xffffffffu, kind == 2);
        if (kind == 1) pair_idx[warp_slot(pm, count + EX_C_PAIR)] = i;
        if (kind == 2) {
            /* a warp's points may span problems: one slot range per problem */
            const unsigned peers = __match_any_sync(fm, (unsigned long long)b);
            if ((int)(threadIdx.x & 31) == __ffs(peers) - 1)
                atomicAdd(count + EX_C_FILTER, (unsigned long long)__popc(peers));
            filt_idx[b * n + (int64_t)warp_slot(peers, count + EX_C_FIXED + b)] = i;
        }
    }
}

/* One coordinate's term of a double score (EXACTNESS.md 4): l2 (x - c)^2 with one rounding
 * of the difference and one of the fused square-and-add; dot -x c and |x c| (the products are
 * exact in double, so these are the host's operations). x and c are f32 values. */
template <bool DOT>
static __device__ __forceinline__ void ex_term(double x, double c, double &s, double &m)
{
    if (DOT) {
        s = fma(-x, c, s);
        m = fma(fabs(x), fabs(c), m);
    } else {
        const double t = x - c;
        s = fma(t, t, s);
    }
}

/* The CPU kernel's dot product step (EXACTNESS.md 3.2): one f32 fused multiply-add. */
template <bool DOT>
static __device__ __forceinline__ void ex_term(float x, float c, float &p, float &)
{
    p = fmaf(x, c, p);
}

/* The host list's slot for point i; from_pair: counted as the pair stage's. */
static __device__ __forceinline__ void to_host(int64_t i, int from_pair, unsigned long long *count, int64_t *host_idx)
{
    host_idx[atomicAdd(count + EX_C_HOST, 1ull)] = i;
    if (from_pair) atomicAdd(count + EX_C_PAIR_HOST, 1ull);
}

/* One warp per point of the pair list: the double intervals [s - r, s + r] of the label i1 and
 * the second i2 (lanes stride the features, then a butterfly sum: a fixed order). Apart:
 * the lower one is the exact argmin (it is below i2's or i1's exact score, and every other
 * centroid's exceeds i1's); otherwise the host decides. */
template <typename T, bool DOT>
__global__ void __launch_bounds__(EX_THREADS) pair_decide(ex_args a)
{
    const int lane = threadIdx.x & 31;
    const int64_t m = (int64_t)a.count[EX_C_PAIR], warps = (int64_t)gridDim.x * (blockDim.x / 32);
    const int64_t n = a.n, d = a.d, k = a.k;
    for (int64_t w = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; w < m; w += warps) {
        const int64_t i = a.pair_idx[w], b = i / n;
        const int32_t i1 = a.labels[i], i2 = k == 2 ? 1 - i1 : a.second_idx[i];
        if (i1 < 0 || i1 >= k || i2 < 0 || i2 >= k || i1 == i2) { /* not from finite scores: cannot happen */
            if (lane == 0) to_host(i, 1, a.count, a.host_idx);
            continue;
        }
        const T *x = (const T *)a.X + b * a.bstride + (i - b * n) * a.ld;
        const float *c1 = a.cent + (b * k + i1) * d, *c2 = a.cent + (b * k + i2) * d;
        const bool cosine = a.xinv != NULL;
        const double inv = cosine ? a.xinv[i] : 0.0;
        double s1 = 0.0, m1 = 0.0, s2 = 0.0, m2 = 0.0;
        for (int64_t j = lane; j < d; j += 32) {
            const double xv = (double)ex_value(x[j], cosine, inv);
            ex_term<DOT>(xv, (double)c1[j], s1, m1);
            ex_term<DOT>(xv, (double)c2[j], s2, m2);
        }
        for (int o = 16; o > 0; o >>= 1) {
            s1 += __shfl_xor_sync(0xffffffffu, s1, o);
            s2 += __shfl_xor_sync(0xffffffffu, s2, o);
            if (DOT) {
                m1 += __shfl_xor_sync(0xffffffffu, m1, o);
                m2 += __shfl_xor_sync(0xffffffffu, m2, o);
            }
        }
        if (lane == 0) {
            const double r1 = a.rfac * (DOT ? m1 : s1), r2 = a.rfac * (DOT ? m2 : s2);
            if (s2 + r2 < s1 - r1) a.labels[i] = i2;
            else if (!(s1 + r1 < s2 - r2)) to_host(i, 1, a.count, a.host_idx);
        }
    }
}

/* A point's filter state over a set of centroids: the smallest lower end lo1 (its centroid c1,
 * the lowest index on equal values), the second smallest lo2 (over the other centroids), and
 * the smallest upper end hi; (inf, inf, inf, 0) for no centroid. Double filter: the survivors
 * of section 4 are the centroids with lo <= hi, and since the centroid holding hi survives,
 * there is exactly one, c1, iff lo2 > hi. f32 filter: lo = hi = the score v, so (lo1, c1, lo2)
 * are the best score, its centroid and the second score, for fkm_cert_ok.
 *
 * The state is a function of the set of (lo, hi, c) seen, whatever the order in which the
 * functions below combine its parts: ex_state_add, given the centroids of a part in increasing
 * index order (every caller), and ex_state_merge, of two disjoint parts, each keep hi = the
 * minimum, lo1 = the minimum with c1 its lowest index (ex_state_add keeps the first of equal
 * values, ex_state_merge the lower c1), lo2 = the minimum over the set less c1. A NaN end
 * (overflowed scores) is never taken by min (fmin semantics) nor by the comparisons, so it is
 * ignored in every order; states hold no NaN. lo1 is always c1's own value, bit for bit; min
 * and max of equal values can differ only in the sign of a zero, which no decision below
 * reads (comparisons and the difference in fkm_cert_ok). So the lanes of a warp, and the
 * centroid slices of filter_tiles, may be merged in any grouping and order. */
template <typename A>
struct ex_state {
    A lo1, lo2, hi;
    int32_t c1;
};

template <typename A>
static __device__ __forceinline__ void ex_state_add(ex_state<A> &s, A lo, A hi, int32_t c)
{
    s.hi = min(s.hi, hi);
    if (lo < s.lo1) s.lo2 = s.lo1, s.lo1 = lo, s.c1 = c;
    else s.lo2 = min(s.lo2, lo);
}

/* s becomes the state of the union of s's centroids and o's (disjoint sets). */
template <typename A>
static __device__ __forceinline__ void ex_state_merge(ex_state<A> &s, const ex_state<A> &o)
{
    s.hi = min(s.hi, o.hi);
    s.lo2 = min(max(s.lo1, o.lo1), min(s.lo2, o.lo2));
    if (o.lo1 < s.lo1 || (o.lo1 == s.lo1 && o.c1 < s.c1)) s.lo1 = o.lo1, s.c1 = o.c1;
}

/* ex_state_merge with lane (lane ^ o)'s state; all 32 lanes call it. */
template <typename A>
static __device__ __forceinline__ void ex_state_merge_xor(ex_state<A> &s, int o)
{
    ex_state<A> t;
    t.lo1 = __shfl_xor_sync(0xffffffffu, s.lo1, o), t.lo2 = __shfl_xor_sync(0xffffffffu, s.lo2, o);
    t.hi = __shfl_xor_sync(0xffffffffu, s.hi, o);
    t.c1 = __shfl_xor_sync(0xffffffffu, s.c1, o);
    ex_state_merge<A>(s, t);
}

/* The filters' work items for a problem's list of m points: point tiles of P, and each tile's
 * centroids, qt = ceil(k / FT_Q) centroid tiles, split into `slices` contiguous ranges of whole
 * centroid tiles (slice s: tiles [s qt / slices, (s + 1) qt / slices)); item w is point tile
 * w / slices with slice w % slices, so the slices of one point tile are neighbours in the grid
 * (they share its rows in L2). By default as many slices as the grid has blocks per point
 * tile, grid / tiles: a list of tiles >= grid / 2 keeps one slice (the whole centroid loop in
 * one block, decided in place, as before slicing existed) and a shorter one spreads over the
 * grid; FLASHKM_EXACT_FILTER_SLICES forces `force` slices (force < 0: qt). Then at most qt
 * (no empty slice) and, with more than one, at most cap / tiles, so that the slices x tiles
 * partial states never exceed the buffer (cap items per problem; 0: always one slice).
 * filter_tiles and filter_merge call this with the same arguments (the same grid; m is read
 * after its list is complete), so they agree. */
static __device__ __forceinline__ int64_t ex_slices(int64_t m, int P, int64_t k, int64_t grid, int64_t cap, int force)
{
    const int64_t tiles = (m + P - 1) / P, qt = (k + FT_Q - 1) / FT_Q;
    if (tiles < 1) return 1;
    int64_t s = force > 0 ? (int64_t)force : force < 0 ? qt : grid / tiles;
    if (s > qt) s = qt;
    if (s > 1 && s > cap / tiles) s = cap / tiles; /* s tiles <= cap, without overflow */
    return s < 1 ? 1 : s;
}

/* The decision of stage 4 (F64 = false) or 5 on point i (global index, problem b of nb) from
 * its state over all of its problem's centroids: filter_tiles in place (one slice) or
 * filter_merge (several). */
template <typename A, bool F64>
static __device__ __forceinline__ void ex_decide(const ex_args &a, int64_t b, int64_t nb, int64_t i,
                                                 const ex_state<A> &st, bool cosine)
{
    if (F64) {
        if (st.lo2 > st.hi) a.labels[i] = st.c1;
        else to_host(i, 0, a.count, a.host_idx);
    } else if (fkm_cert_ok(&a.cert_f32, (float)st.lo1, (float)st.lo2,
                           /* cosine: the f32 scores are of y, whose norm is at most this */
                           cosine ? FKM_CERT_COS_YNORM : a.xnorm[i], a.cnorm[b * a.k + st.c1], a.cmax[b])) {
        a.labels[i] = st.c1;
    } else {
        atomicAdd(a.count + EX_C_FILTER64, 1ull);
        a.filt64_idx[b * a.n + (int64_t)atomicAdd(a.count + EX_C_FIXED + nb + b, 1ull)] = i;
    }
}

/* The filters for problem blockIdx.y, P points of its list per tile, the problem's centroids
 * in tiles of FT_Q; blocks stride over the work items of ex_slices (a point tile and a slice
 * of its centroid tiles; one slice: every centroid):
 *   F64 = false: the CPU kernel's f32 arithmetic (EXACTNESS.md 3.1: bias fl32(sum c_j^2 in
 *     double), a fused multiply-add chain over the features in increasing order, one final
 *     f32 multiply-add; exact inputs), so fkm_cert_cpu's bound holds; fkm_cert_ok on the top
 *     two labels the point, else it goes on to the double filter's list;
 *   F64 = true: section 4's double intervals, summed over the features in increasing order;
 *     one survivor labels the point, else it goes to the host.
 * Each (point, centroid) value is computed the same way wherever the list put the point and
 * whichever slice holds the centroid (one thread, the same operations in the same order).
 * With one slice the block decides (ex_decide); with several, lane 0 of each warp stores each
 * of its points' partial states (the slice's centroids) in a.part at (item, point of the tile)
 * and filter_merge decides. Point and centroid tiles are staged in shared memory (coalesced
 * loads, each value converted once). Shared memory is static and every index below stays
 * inside its array; rows and columns past the data are staged as zeros, whose terms add
 * exact zeros. */
template <typename T, bool DOT, bool F64>
__global__ void __launch_bounds__(EX_THREADS) filter_tiles(ex_args a)
{
    typedef typename std::conditional<F64, double, float>::type A;
    constexpr int PP = FT_PP_OF(F64), P = FT_P_OF(F64);
    /* padded rows: the transposing stores spread over the banks; xs rows stay 16-byte
     * aligned for the broadcast loads of a thread's PP points */
    __shared__ A xs[FT_DC][P + 16 / sizeof(A)];
    __shared__ A cs[FT_DC][FT_Q + 1];
    __shared__ int64_t pts[P];
    __shared__ double pinv[P]; /* cosine: the points' inverse norms */
    const bool cosine = a.xinv != NULL;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t n = a.n, d = a.d, k = a.k, b = blockIdx.y;
    const int64_t m = (int64_t)a.count[EX_C_FIXED + (F64 ? gridDim.y : 0) + b];
    const T *Xb = (const T *)a.X + b * a.bstride;
    const float *C = a.cent + b * k * d;
    const int64_t *list = (F64 ? a.filt64_idx : a.filt_idx) + b * n;
    const int64_t slices = ex_slices(m, P, k, gridDim.x, a.part_items, a.slices_force);
    const int64_t qt = (k + FT_Q - 1) / FT_Q;
    /* item w: point tile w / slices (while it starts below m), slice w % slices */
    for (int64_t w = blockIdx.x; w / slices * P < m; w += gridDim.x) {
        const int64_t t0 = w / slices * P, sl = w % slices;
        /* this slice's centroid tiles; one slice: c0 < qt FT_Q, i.e. every c0 < k */
        const int64_t c_lo = sl * qt / slices * FT_Q, c_hi = (sl + 1) * qt / slices * FT_Q;
        __syncthreads(); /* the previous tile's readers of pts are done */
        if (tid < P) {
            pts[tid] = t0 + tid < m ? list[t0 + tid] - b * n : -1;
            pinv[tid] = cosine && t0 + tid < m ? a.xinv[list[t0 + tid]] : 0.0;
        }
        __syncthreads();
        ex_state<A> st[PP];
#pragma unroll
        for (int p = 0; p < PP; p++) st[p].lo1 = st[p].lo2 = st[p].hi = (A)INFINITY, st[p].c1 = 0;
        for (int64_t c0 = c_lo; c0 < c_hi; c0 += FT_Q) {
            A s[PP][FT_CC], mg[PP][FT_CC];
#pragma unroll
            for (int p = 0; p < PP; p++)
#pragma unroll
                for (int c = 0; c < FT_CC; c++) s[p][c] = mg[p][c] = (A)0;
            for (int64_t j0 = 0; j0 < d; j0 += FT_DC) {
                /* element e: row e / FT_DC, feature e % FT_DC (consecutive threads read
                 * consecutive features of a row) */
                for (int e = tid; e < P * FT_DC; e += EX_THREADS) {
                    const int p = e / FT_DC, jj = e % FT_DC;
                    const int64_t r = pts[p], j = j0 + jj;
                    xs[jj][p] = r >= 0 && j < d ? (A)ex_value(Xb[r * a.ld + j], cosine, pinv[p]) : (A)0;
                }
                for (int e = tid; e < FT_Q * FT_DC; e += EX_THREADS) {
                    const int c = e / FT_DC, jj = e % FT_DC;
                    const int64_t cc = c0 + c, j = j0 + jj;
                    cs[jj][c] = cc < k && j < d ? (A)C[cc * d + j] : (A)0;
                }
                __syncthreads();
#pragma unroll 4
                for (int jj = 0; jj < FT_DC; jj++) {
                    A xv[PP], cv[FT_CC];
#pragma unroll
                    for (int p = 0; p < PP; p++) xv[p] = xs[jj][warp * PP + p]; /* broadcast */
#pragma unroll
                    for (int c = 0; c < FT_CC; c++) cv[c] = cs[jj][lane + 32 * c];
#pragma unroll
                    for (int p = 0; p < PP; p++)
#pragma unroll
                        for (int c = 0; c < FT_CC; c++) ex_term<DOT>(xv[p], cv[c], s[p][c], mg[p][c]);
                }
                __syncthreads(); /* xs, cs are restaged next */
            }
#pragma unroll
            for (int c = 0; c < FT_CC; c++) {
                const int64_t cc = c0 + lane + 32 * c;
                if (cc >= k) continue;
                const float bias = F64 || DOT ? 0.f : a.cbias[b * k + cc];
#pragma unroll
                for (int p = 0; p < PP; p++) {
                    if (F64) {
                        const A r = (A)a.rfac * (DOT ? mg[p][c] : s[p][c]);
                        ex_state_add<A>(st[p], s[p][c] - r, s[p][c] + r, (int32_t)cc);
                    } else {
                        /* 3.1 step 3: v = fl(b - 2 p) (l2), -p (dot) */
                        const A v = DOT ? -s[p][c] : (A)fmaf(-2.f, (float)s[p][c], bias);
                        ex_state_add<A>(st[p], v, v, (int32_t)cc);
                    }
                }
            }
        }
        /* the 32 lanes of a warp hold disjoint centroids of the same PP points */
#pragma unroll
        for (int p = 0; p < PP; p++) {
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) ex_state_merge_xor<A>(st[p], o);
            const int64_t r = pts[warp * PP + p];
            if (lane != 0 || r < 0) continue;
            if (slices == 1) ex_decide<A, F64>(a, b, gridDim.y, b * n + r, st[p], cosine);
            else ((ex_state<A> *)a.part)[(b * a.part_items + w) * P + warp * PP + p] = st[p]; /* w < cap */
        }
    }
}

/* Stage 4 or 5's decision for a sliced list (ex_slices > 1), launched after filter_tiles<..,
 * F64> with the same grid and arguments (so the same slicing; with one slice it returns at
 * once): a thread per listed point merges the partial states of its point tile's slices (in
 * slice order; any order gives the same state, see ex_state) and decides with ex_decide, the
 * code filter_tiles runs in place for one slice. The partial states were written by the
 * previous kernel on the stream: no ordering within a kernel is needed. (Rather than the last
 * block of a point tile deciding after an atomic ticket and __threadfence: no inter-block
 * ordering to get right, nothing for racecheck to take on trust, no ticket counters to reset
 * every assignment, and the decisions run a thread per point over the whole grid instead of
 * in one block per tile; the price is one more launch per filter, which returns at once when
 * the list was not sliced.) */
template <bool F64>
__global__ void __launch_bounds__(EX_THREADS) filter_merge(ex_args a)
{
    typedef typename std::conditional<F64, double, float>::type A;
    constexpr int P = FT_P_OF(F64);
    const int64_t b = blockIdx.y;
    const int64_t m = (int64_t)a.count[EX_C_FIXED + (F64 ? gridDim.y : 0) + b];
    const int64_t slices = ex_slices(m, P, a.k, gridDim.x, a.part_items, a.slices_force);
    if (slices == 1) return;
    const bool cosine = a.xinv != NULL;
    const int64_t *list = (F64 ? a.filt64_idx : a.filt_idx) + b * a.n;
    const ex_state<A> *part = (const ex_state<A> *)a.part + b * a.part_items * P;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < m; j += (int64_t)gridDim.x * blockDim.x) {
        /* list entry j: point j % P of tile j / P, whose items are tile * slices + s */
        const ex_state<A> *q = part + j / P * slices * P + j % P;
        ex_state<A> st = q[0];
        for (int64_t s = 1; s < slices; s++) ex_state_merge<A>(st, q[s * P]);
        ex_decide<A, F64>(a, b, gridDim.y, list[j], st, cosine);
    }
}

/* A lane's share of one row copied in the input type to a row of ldr elements, zero beyond d
 * (16-byte aligned rows for the tensor-core kernels): the candidate pass's and the carried
 * points' gathers. */
template <typename T>
static __device__ __forceinline__ void copy_row_padded(const T *x, int64_t d, T *dst, int64_t ldr, int lane)
{
    for (int64_t c = lane; c < ldr; c += 32) dst[c] = c < d ? x[c] : static_cast<T>(0.f);
}

/* ---------------------------------------------------------------- carried certificates (5.5) */

/* One warp per centroid: an upper bound on ||c - cprev|| (fkm_cert_delta of the double
 * differences: lane-strided sums and a butterfly, a fixed order). */
__global__ void centroid_moves(const float *C, const float *P, int64_t rows, int64_t d, double *move)
{
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (r >= rows) return;
    double ss = 0.0;
    for (int64_t j = lane; j < d; j += 32) {
        const double e = (double)C[r * d + j] - (double)P[r * d + j];
        ss += e * e;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0) move[r] = fkm_cert_delta(ss);
}

/* Each point with a valid certificate moves its bounds (fkm_cert_carry_move); those still
 * separated keep their label (carried = 1); every other point goes to the list of points to
 * assign (todo, counted by *count; warp-aggregated). */
__global__ void carry_points(int64_t n_total, int64_t n, int64_t k, int dot, const int32_t *labels,
                             const double *xnorm, const double *cmove, const double *cmove_max, double *clo,
                             double *chi, unsigned char *carried, int64_t *todo, unsigned long long *count)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i - (threadIdx.x & 31) < n_total; i += stride) {
        int keep = 0;
        if (i < n_total) {
            fkm_carry b = {clo[i], chi[i]};
            const int64_t pb = i / n;
            const int32_t a = labels[i];
            if (b.lo > b.hi && a >= 0 && a < k) {
                keep = fkm_cert_carry_move(&b, dot, xnorm[i], cmove[pb * k + a], cmove_max[pb]);
                if (!keep) b.lo = -INFINITY, b.hi = INFINITY;
                clo[i] = b.lo, chi[i] = b.hi;
            }
            carried[i] = (unsigned char)keep;
        }
        const unsigned m = __ballot_sync(0xffffffffu, i < n_total && !keep);
        if (i < n_total && !keep) todo[warp_slot(m, count)] = i;
    }
}

/* The gathered top-3 pass's outputs back to the points' slots. */
__global__ void carry_scatter(const int64_t *pts, int64_t m, const int32_t *glab, const float *gbest,
                              const float *gsecond, const float *gthird, const int32_t *gsecond_idx, int32_t *labels,
                              float *best, float *second, float *third, int32_t *second_idx)
{
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < m; j += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = pts[j];
        labels[i] = glab[j], best[i] = gbest[j], second[i] = gsecond[j], third[i] = gthird[j];
        second_idx[i] = gsecond_idx[j];
    }
}

/* Rows j < m of the list (from entry off) in the input type, 16-byte aligned, zero beyond d;
 * their point indices to pts. One warp per row. */
template <typename T>
__global__ void gather_input_rows(const T *X, int64_t n, int64_t d, int64_t ld, int64_t bstride, const int64_t *list,
                                  int64_t m, T *rows, int64_t ldr, int64_t *pts)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t j = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; j < m; j += warps) {
        const int64_t i = list[j];
        copy_row_padded(X + (i / n) * bstride + (i % n) * ld, d, rows + j * ldr, ldr, lane);
        if (lane == 0) pts[j] = i;
    }
}

/* ---------------------------------------------------------------- candidate pass (5.4) */

/* Chunk rows j < m of problem b's filter list (from entry off): row j of rows = point
 * list[off + j]'s stored row (the input type, zero beyond d), its point index, a zero count,
 * and its threshold fkm_cert_threshold_pt rounded up to f32 (every exact argmin's computed
 * score is at most this, in any pass with the tensor-core bound); a point that may not be
 * certified at all (threshold +inf, or beyond f32) gets -inf: no candidates, so cand_decide
 * hands it back to the filters. One warp per row. */
template <typename T>
__global__ void cand_gather(const T *X, int64_t n, int64_t d, int64_t ld, int64_t bstride, int64_t k, int64_t b,
                            const int64_t *list, int64_t m, fkm_cert cert, const int32_t *labels, const float *best,
                            const double *xnorm, const double *xdelta, const double *cnorm, const double *cdelta,
                            const double *cmax, const double *cdmax, const double *mumax, T *rows, int64_t ldr,
                            float *thr, int64_t *pts)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t j = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; j < m; j += warps) {
        const int64_t i = list[j], r = i - b * n;
        copy_row_padded(X + b * bstride + r * ld, d, rows + j * ldr, ldr, lane);
        if (lane != 0) continue;
        const int64_t c = b * k + labels[i];
        const fkm_cert_pt p = {xnorm[i], xdelta[i], cnorm[c], cdelta[c], cmax[b], cdmax[b]};
        const double t = fkm_cert_threshold_pt(&cert, best[i], &p, mumax != NULL, mumax ? mumax[b] : 0.0);
        const float tf = __double2float_ru(t); /* +inf for t beyond f32 */
        const bool ok = tf < INFINITY;
        thr[j] = ok ? tf : -INFINITY;
        pts[j] = i;
    }
}

/* One warp per chunk row: a count within the cap lists every centroid that can be an exact
 * argmin (5.4), and section 4's double intervals over them decide as the double filter
 * decides over all centroids: one survivor is the label, several go to the host. A count
 * past the cap or none (a threshold of -inf; otherwise impossible, as is an index out of
 * range) sends the point back to
 * its problem's filter list, compacted at the front (entries already read: a chunk's rows
 * were gathered before, and the list has at most as many left-over points as read ones).
 * The candidates' order is the atomics'; ex_state_merge of single centroids gives the same
 * state in any order (ex_state). */
template <typename T, bool DOT>
__global__ void __launch_bounds__(EX_THREADS) cand_decide(ex_args a, int64_t b, int64_t m, const int64_t *pts,
                                                          const unsigned *cnt, const int32_t *cidx,
                                                          int64_t *list_b, unsigned long long *left)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    const int64_t n = a.n, d = a.d, k = a.k;
    const bool cosine = a.xinv != NULL;
    for (int64_t j = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; j < m; j += warps) {
        const int64_t i = pts[j];
        const unsigned nc = cnt[j];
        int32_t mine = -1;
        if (nc >= 1 && nc <= EX_CAND_CAP && lane < (int)nc) mine = cidx[j * EX_CAND_CAP + lane];
        const bool out_of_range = lane < (int)nc && (mine < 0 || mine >= k);
        const bool bad = nc < 1 || nc > EX_CAND_CAP || __any_sync(0xffffffffu, out_of_range);
        if (bad) {
            if (lane == 0) list_b[atomicAdd(left + b, 1ull)] = i;
            continue;
        }
        const T *x = (const T *)a.X + b * a.bstride + (i - b * n) * a.ld;
        const double inv = cosine ? a.xinv[i] : 0.0;
        ex_state<double> st = {INFINITY, INFINITY, INFINITY, 0};
        for (unsigned q = 0; q < nc; q++) {
            const int32_t c = __shfl_sync(0xffffffffu, mine, (int)q);
            const float *cr = a.cent + (b * k + c) * d;
            double s = 0.0, mg = 0.0;
            for (int64_t jj = lane; jj < d; jj += 32)
                ex_term<DOT>((double)ex_value(x[jj], cosine, inv), (double)cr[jj], s, mg);
            for (int o = 16; o > 0; o >>= 1) {
                s += __shfl_xor_sync(0xffffffffu, s, o);
                if (DOT) mg += __shfl_xor_sync(0xffffffffu, mg, o);
            }
            const double r = a.rfac * (DOT ? mg : s);
            const ex_state<double> one = {s - r, INFINITY, s + r, c};
            ex_state_merge<double>(st, one); /* lane 0's decides: its own fixed order of the sums */
        }
        if (lane == 0) {
            if (st.lo2 > st.hi) a.labels[i] = st.c1;
            else to_host(i, 0, a.count, a.host_idx);
        }
    }
}

/* Problem b's filter list becomes what the candidate pass left in it. */
__global__ void cand_close(unsigned long long *count, const unsigned long long *left, int64_t b)
{
    count[EX_C_FIXED + b] = left[b];
}

/* rows[j] = the f32 row of point idx[j] (exact conversion from f32/f16/bf16), normalised as
 * fkm_load_row does when xinv != NULL (cosine). */
template <typename T>
__global__ void gather_rows(const T *X, int64_t d, int64_t ld, int64_t n, int64_t bstride, const int64_t *idx,
                            int64_t m, const double *xinv, float *rows)
{
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < m * d;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t j = t / d, c = t % d, i = idx[j];
        rows[t] = ex_value(X[(i / n) * bstride + (i % n) * ld + c], xinv != NULL, xinv ? xinv[i] : 0.0);
    }
}

__global__ void scatter_labels(const int64_t *idx, const int32_t *lab, int64_t m, int32_t *labels)
{
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < m; j += (int64_t)gridDim.x * blockDim.x)
        labels[idx[j]] = lab[j];
}

/* changed[b] = labels of problem b (grid.y) that differ from prev; one atomic per warp. */
__global__ void count_changed(const int32_t *labels, const int32_t *prev, int64_t n, unsigned long long *changed)
{
    const int64_t b = blockIdx.y;
    unsigned long long mine = 0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i - threadIdx.x < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int differs = i < n && labels[b * n + i] != prev[b * n + i];
        mine += (unsigned long long)__popc(__ballot_sync(0xffffffffu, differs));
    }
    if ((threadIdx.x & 31) == 0 && mine) atomicAdd(changed + b, mine);
}

static unsigned blocks_for(int64_t work)
{
    const int64_t b = fkm_ceil_div(work, EX_THREADS);
    return (unsigned)(b < 1 ? 1 : b > EX_MAX_BLOCKS ? EX_MAX_BLOCKS : b);
}

/* ---------------------------------------------------------------- host side */

/* FLASHKM_EXACT_FILTER_SLICES, a test and A/B knob: the number of centroid slices of the
 * filters' work items (ex_slices; still at most the centroid tiles and what the partial-state
 * buffer holds), "max" for one slice per centroid tile; unset, empty, 0 or anything else: the
 * default rule. The labels and counts do not depend on it. */
static int filter_slices_env(void)
{
    const char *e = getenv("FLASHKM_EXACT_FILTER_SLICES");
    if (!e || !*e) return 0;
    if (strcmp(e, "max") == 0) return -1;
    char *end = NULL;
    const long long v = strtoll(e, &end, 10);
    if (!end || *end != '\0' || v < 0) return 0;
    return v > (1 << 24) ? (1 << 24) : (int)v;
}

/* FLASHKM_EXACT_CAND, a test and A/B knob: 0 keeps the filter lists for the filters, 1 runs
 * the candidate pass for every k; unset (or anything else): the default, k >= EX_CAND_MIN_K.
 * The labels do not depend on it (the split between the device and the host may). */
static int cand_wanted(int64_t k)
{
    const char *e = getenv("FLASHKM_EXACT_CAND");
    if (e && strcmp(e, "0") == 0) return 0;
    if (e && strcmp(e, "1") == 0) return 1;
    return k >= EX_CAND_MIN_K;
}

/* FLASHKM_EXACT_CARRY=0 turns the carried certificates off (A/B runs and tests: the same
 * labels); they apply to one problem (batch 1), l2 and dot. */
static int carry_wanted(const fkm_dev_problem *pb)
{
    const char *e = getenv("FLASHKM_EXACT_CARRY");
    if (e && strcmp(e, "0") == 0) return 0;
    return pb->batch == 1 && pb->metric != FKM_METRIC_COSINE;
}

void fkm_cuda_exact_destroy(fkm_cuda_exact_ws *ws)
{
    if (!ws) return;
    cudaFree(ws->clo);
    cudaFree(ws->chi);
    cudaFree(ws->cprev);
    cudaFree(ws->cmove);
    cudaFree(ws->cmove_max);
    cudaFree(ws->carried);
    cudaFree(ws->todo);
    cudaFree(ws->glab_best);
    cudaFree(ws->cand_rows);
    cudaFree(ws->cand_thr);
    cudaFree(ws->cand_pts);
    cudaFree(ws->cand_cnt);
    cudaFree(ws->cand_idx);
    cudaFree(ws->cand_left);
    cudaFreeHost(ws->flen_h);
    cudaFree(ws->prev);
    cudaFree(ws->best);
    cudaFree(ws->second);
    cudaFree(ws->third);
    cudaFree(ws->second_idx);
    cudaFree(ws->xnorm);
    cudaFree(ws->xdelta);
    cudaFree(ws->xinv);
    cudaFree(ws->cnorm);
    cudaFree(ws->cmax);
    cudaFree(ws->cdelta);
    cudaFree(ws->cdmax);
    cudaFree(ws->cmu);
    cudaFree(ws->mumax);
    cudaFree(ws->count);
    cudaFree(ws->pair_idx);
    cudaFree(ws->filt_idx);
    cudaFree(ws->filt64_idx);
    cudaFree(ws->cbias);
    cudaFree(ws->host_idx);
    cudaFree(ws->part32);
    cudaFree(ws->part64);
    cudaFree(ws->rows);
    cudaFree(ws->lab);
    cudaFreeHost(ws->count_h);
    cudaFreeHost(ws->idx_h);
    cudaFreeHost(ws->rows_h);
    cudaFreeHost(ws->cent_h);
    cudaFreeHost(ws->lab_h);
    free(ws);
}

fkm_status fkm_cuda_exact_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_cuda_exact_ws **out)
{
    *out = NULL;
    /* f64: the FFMA path has no top-3 variant yet */
    if (pb->dtype == FKM_F64)
        return fkm_fail(ctx, FKM_E_UNSUPPORTED, "precision = exact with f64 input is not available on the cuda "
                                                "backend yet (use the cpu backend)");
    fkm_cuda_exact_ws *ws = (fkm_cuda_exact_ws *)calloc(1, sizeof *ws);
    if (!ws) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the exact-mode workspace");
    /* cosine: the tensor-core pass scores -x.c on the raw rows (cn = 0, alpha = 1), so its
     * error is the dot product's; fkm_cert_cos_ok adds the normalisation's terms (5.1) */
    const int cosine = pb->metric == FKM_METRIC_COSINE;
    ws->cert = fkm_cert_tensor((long long)pb->d, pb->metric != FKM_METRIC_L2, (int)pb->dtype);
    ws->cert_f32 = fkm_cert_cpu((long long)pb->d, pb->metric == FKM_METRIC_DOT);
    ws->n_total = pb->n * pb->batch;
    ws->k_total = pb->k * pb->batch;
    ws->chunk = EX_CHUNK_BYTES / (pb->d * (int64_t)sizeof(float));
    if (ws->chunk < 1) ws->chunk = 1;
    if (ws->chunk > ws->n_total) ws->chunk = ws->n_total;
    /* the device stages run before their list lengths are known on the host: grids that fill
     * the device (a few blocks per SM) and stride over whatever the lists hold */
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        (void)cudaGetLastError(), sms = 132;
    const int64_t blocks_needed = fkm_ceil_div(ws->n_total, EX_THREADS / 32); /* a warp per point */
    const int64_t pair_blocks = (int64_t)sms * 8 < blocks_needed ? (int64_t)sms * 8 : blocks_needed;
    const int64_t per_problem = fkm_ceil_div((int64_t)sms * 4, pb->batch);
    const int64_t tiles32 = fkm_ceil_div(pb->n, FT_P_OF(false)), tiles64 = fkm_ceil_div(pb->n, FT_P_OF(true));
    ws->pair_blocks = (unsigned)(pair_blocks < 1 ? 1 : pair_blocks);
    ws->f32_blocks = (unsigned)(per_problem < tiles32 ? per_problem : tiles32);
    ws->f64_blocks = (unsigned)(per_problem < tiles64 ? per_problem : tiles64);
    /* the filters' partial-state buffers: a fixed number of items shared by the problems, and
     * no more than a problem can use (its whole list in tiles, times the centroid tiles) */
    ws->slices_force = filter_slices_env();
    {
        const int64_t total = (int64_t)sms * EX_PART_ITEMS_PER_SM > EX_PART_ITEMS_MIN
                                  ? (int64_t)sms * EX_PART_ITEMS_PER_SM : EX_PART_ITEMS_MIN;
        const int64_t cap = total / pb->batch, qt = fkm_ceil_div(pb->k, FT_Q);
        /* the products are taken only for tiles < cap (a few thousand), with qt <= 2^24 */
        ws->part32_items = tiles32 < cap && tiles32 * qt < cap ? tiles32 * qt : cap;
        ws->part64_items = tiles64 < cap && tiles64 * qt < cap ? tiles64 * qt : cap;
        if (ws->part32_items < 2 || qt < 2) ws->part32_items = 0; /* one slice always */
        if (ws->part64_items < 2 || qt < 2) ws->part64_items = 0;
    }
    const size_t n = (size_t)ws->n_total, kd = (size_t)(ws->k_total * pb->d), ch = (size_t)ws->chunk;
    const size_t ncount = (size_t)(EX_C_FIXED + 2 * pb->batch);
    fkm_status s = FKM_OK;
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->prev, n * sizeof(int32_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->best, n * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->second, n * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->third, n * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->second_idx, n * sizeof(int32_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->xnorm, n * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->xdelta, n * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cnorm, (size_t)ws->k_total * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cmax, (size_t)pb->batch * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cdelta, (size_t)ws->k_total * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cdmax, (size_t)pb->batch * sizeof(double)), s, fail);
    if (cosine) {
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->xinv, n * sizeof(double)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cmu, (size_t)ws->k_total * sizeof(double)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->mumax, (size_t)pb->batch * sizeof(double)), s, fail);
    }
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->count, ncount * sizeof(unsigned long long)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->pair_idx, n * sizeof(int64_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->filt_idx, n * sizeof(int64_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->filt64_idx, n * sizeof(int64_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cbias, (size_t)ws->k_total * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->host_idx, n * sizeof(int64_t)), s, fail);
    if (ws->part32_items)
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc(&ws->part32, (size_t)(pb->batch * ws->part32_items) *
                                                           FT_P_OF(false) * sizeof(ex_state<float>)), s, fail);
    if (ws->part64_items)
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc(&ws->part64, (size_t)(pb->batch * ws->part64_items) *
                                                           FT_P_OF(true) * sizeof(ex_state<double>)), s, fail);
    ws->carry = carry_wanted(pb);
    ws->cand = cand_wanted(pb->k);
    {
        const char *e = getenv("FLASHKM_CAND_KERNEL");
        ws->cand_mma = e && strcmp(e, "mma") == 0;
    }
    if (ws->carry) {
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->clo, n * sizeof(double)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->chi, n * sizeof(double)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cprev, kd * sizeof(float)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cmove, (size_t)ws->k_total * sizeof(double)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cmove_max, (size_t)pb->batch * sizeof(double)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->carried, n), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->todo, n * sizeof(int64_t)), s, fail);
    }
    if (ws->cand || ws->carry) {
        /* rows 16-byte aligned for the tensor-core kernel's loads, zero beyond d */
        const int64_t es = (int64_t)fkm_dtype_size(pb->dtype), per16 = 16 / es;
        ws->cand_ld = fkm_ceil_div(pb->d, per16) * per16;
        int64_t c = EX_CAND_BYTES / (ws->cand_ld * es);
        if (c > ((int64_t)1 << 17)) c = (int64_t)1 << 17;
        if (c > pb->n) c = pb->n; /* a problem's list holds at most n points */
        ws->cand_chunk = c < 1 ? 1 : c;
        const size_t cc = (size_t)ws->cand_chunk;
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc(&ws->cand_rows, cc * (size_t)ws->cand_ld * (size_t)es), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cand_thr, cc * sizeof(float)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cand_pts, cc * sizeof(int64_t)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cand_cnt, cc * sizeof(unsigned)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cand_idx, cc * EX_CAND_CAP * sizeof(int32_t)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cand_left, (size_t)pb->batch * sizeof(unsigned long long)),
                          s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->flen_h, (size_t)pb->batch * sizeof(unsigned long long)),
                          s, fail);
        if (ws->carry) FKM_CUDA_TRY_GOTO(ctx, cudaMalloc(&ws->glab_best, cc * 20), s, fail);
    }
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->rows, ch * (size_t)pb->d * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->lab, ch * sizeof(int32_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->count_h, EX_C_FIXED * sizeof(unsigned long long)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->idx_h, n * sizeof(int64_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->rows_h, ch * (size_t)pb->d * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->cent_h, kd * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->lab_h, ch * sizeof(int32_t)), s, fail);
    *out = ws;
    return FKM_OK;
fail:
    fkm_cuda_exact_destroy(ws);
    return s;
}

static int cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The centroids' norms, their rounding to the operand type OP (the input type; TF32 for f32),
 * the f32 filter's bias and, for cosine, mu: one warp per centroid, every assignment. */
template <typename OP>
static fkm_status launch_centroid_norms(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb,
                                        const float *cent, cudaStream_t stream)
{
    row_norms<float, OP, true><<<(unsigned)fkm_ceil_div(ws->k_total, EX_THREADS / 32), EX_THREADS, 0, stream>>>(
        cent, ws->k_total, pb->d, pb->d, ws->k_total, 0, ws->cnorm, ws->cbias, ws->cmu, ws->cdelta);
    FKM_CUDA_LAUNCHED(ctx, "row_norms(centroids)");
    return FKM_OK;
}

template <typename T>
static fkm_status launch_row_norms(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb, cudaStream_t stream)
{
    const int64_t rows = ws->n_total, per_block = EX_THREADS / 32;
    /* the input type is the x operand's type (TF32 for f32) */
    row_norms<T, T, false><<<(unsigned)fkm_ceil_div(rows, per_block), EX_THREADS, 0, stream>>>(
        (const T *)pb->X, rows, pb->d, pb->ld, pb->n, pb->batch_stride, ws->xnorm, NULL, NULL, ws->xdelta);
    FKM_CUDA_LAUNCHED(ctx, "row_norms");
    if (ws->xinv) {
        row_inv_norms<T><<<(unsigned)fkm_ceil_div(rows, per_block), EX_THREADS, 0, stream>>>(
            (const T *)pb->X, rows, pb->d, pb->ld, pb->n, pb->batch_stride, ws->xinv);
        FKM_CUDA_LAUNCHED(ctx, "row_inv_norms");
    }
    return FKM_OK;
}

/* The candidate pass (EXACTNESS.md 5.4) over each problem's filter list, chunk by chunk: the
 * lists' lengths come to the host (one synchronisation), each chunk's rows are gathered with
 * their thresholds, the tensor-core kernel lists their candidates, cand_decide decides from
 * them and puts back in the list what it cannot take; the filters then run on what is left. */
template <typename T, bool DOT>
static fkm_status launch_candidates(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, fkm_cuda_assign_ws *aws,
                                    const fkm_dev_problem *pb, const ex_args &a, cudaStream_t stream)
{
    const int64_t nb = pb->batch;
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->flen_h, ws->count + EX_C_FIXED, (size_t)nb * sizeof(unsigned long long),
                                      cudaMemcpyDeviceToHost, stream));
    FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->cand_left, 0, (size_t)nb * sizeof(unsigned long long), stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
    const fkm_cuda_cand_out out = {ws->cand_thr, ws->cand_idx, ws->cand_cnt, EX_CAND_CAP};
    for (int64_t b = 0; b < nb; b++) {
        const int64_t m = (int64_t)ws->flen_h[b];
        if (m == 0) continue;
        int64_t *list = ws->filt_idx + b * pb->n;
        for (int64_t off = 0; off < m; off += ws->cand_chunk) {
            const int64_t c = m - off < ws->cand_chunk ? m - off : ws->cand_chunk;
            const unsigned blocks = (unsigned)fkm_ceil_div(c, EX_THREADS / 32); /* a warp per row */
            cand_gather<T><<<blocks, EX_THREADS, 0, stream>>>(
                (const T *)pb->X, pb->n, pb->d, pb->ld, pb->batch_stride, pb->k, b, list + off, c, ws->cert, a.labels,
                ws->best, ws->xnorm, ws->xdelta, ws->cnorm, ws->cdelta, ws->cmax, ws->cdmax, ws->mumax,
                (T *)ws->cand_rows, ws->cand_ld, ws->cand_thr, ws->cand_pts);
            FKM_CUDA_LAUNCHED(ctx, "cand_gather");
            const fkm_status s =
                fkm_cuda_assign_candidates(ctx, aws, pb, b, ws->cand_rows, c, ws->cand_ld, &out, ws->cand_mma, stream);
            if (s != FKM_OK) return s;
            cand_decide<T, DOT><<<blocks < ws->pair_blocks ? blocks : ws->pair_blocks, EX_THREADS, 0, stream>>>(
                a, b, c, ws->cand_pts, ws->cand_cnt, ws->cand_idx, list, ws->cand_left);
            FKM_CUDA_LAUNCHED(ctx, "cand_decide");
        }
        cand_close<<<1, 1, 0, stream>>>(ws->count, ws->cand_left, b);
        FKM_CUDA_LAUNCHED(ctx, "cand_close");
    }
    return FKM_OK;
}

/* The pair and filter stages for input type T and metric DOT (the candidate pass first when
 * the workspace has it). */
template <typename T, bool DOT>
static fkm_status launch_device_stages(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, fkm_cuda_assign_ws *aws,
                                       const fkm_dev_problem *pb, const float *cent, int32_t *labels,
                                       cudaStream_t stream)
{
    const ex_args a = {pb->X,        pb->n,          pb->d,     pb->ld,    pb->batch_stride,
                       pb->k,        cent,           ws->cbias, ws->xnorm, ws->cnorm,
                       ws->cmax,     ws->xinv,       fkm_exact_radius_factor(pb->d), ws->cert_f32, ws->second_idx,
                       labels,       ws->count,      ws->pair_idx, ws->filt_idx, ws->filt64_idx,
                       ws->host_idx, NULL,           0,            0};
    pair_decide<T, DOT><<<ws->pair_blocks, EX_THREADS, 0, stream>>>(a);
    FKM_CUDA_LAUNCHED(ctx, "pair_decide");
    if (ws->cand) {
        const fkm_status s = launch_candidates<T, DOT>(ctx, ws, aws, pb, a, stream);
        if (s != FKM_OK) return s;
    }
    /* each filter, then its merge of sliced work (same grid: the same slicing; it returns at
     * once when the list kept one slice) */
    ex_args a32 = a, a64 = a;
    a32.part = ws->part32, a32.part_items = ws->part32_items, a32.slices_force = ws->slices_force;
    a64.part = ws->part64, a64.part_items = ws->part64_items, a64.slices_force = ws->slices_force;
    const dim3 g32(ws->f32_blocks, (unsigned)pb->batch), g64(ws->f64_blocks, (unsigned)pb->batch);
    filter_tiles<T, DOT, false><<<g32, EX_THREADS, 0, stream>>>(a32);
    FKM_CUDA_LAUNCHED(ctx, "filter_tiles(f32)");
    filter_merge<false><<<g32, EX_THREADS, 0, stream>>>(a32);
    FKM_CUDA_LAUNCHED(ctx, "filter_merge(f32)");
    filter_tiles<T, DOT, true><<<g64, EX_THREADS, 0, stream>>>(a64);
    FKM_CUDA_LAUNCHED(ctx, "filter_tiles(f64)");
    filter_merge<true><<<g64, EX_THREADS, 0, stream>>>(a64);
    FKM_CUDA_LAUNCHED(ctx, "filter_merge(f64)");
    return FKM_OK;
}

template <typename T>
static fkm_status launch_device_stages_any(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, fkm_cuda_assign_ws *aws,
                                           const fkm_dev_problem *pb, const float *cent, int32_t *labels,
                                           cudaStream_t stream)
{
    /* cosine takes the l2 stages: they score (y, C) with y read through ex_value */
    return pb->metric == FKM_METRIC_DOT ? launch_device_stages<T, true>(ctx, ws, aws, pb, cent, labels, stream)
                                        : launch_device_stages<T, false>(ctx, ws, aws, pb, cent, labels, stream);
}

template <typename T>
static fkm_status launch_gather(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb, const int64_t *idx,
                                int64_t m, cudaStream_t stream)
{
    gather_rows<T><<<blocks_for(m * pb->d), EX_THREADS, 0, stream>>>((const T *)pb->X, pb->d, pb->ld, pb->n,
                                                                     pb->batch_stride, idx, m, ws->xinv, ws->rows);
    FKM_CUDA_LAUNCHED(ctx, "gather_rows");
    return FKM_OK;
}

/* Re-decides the m points listed (sorted) in ws->idx_h, chunk by chunk. */
static fkm_status redecide(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb, int64_t m,
                           int32_t *labels, int n_threads, cudaStream_t stream)
{
    const int64_t d = pb->d, k = pb->k;
    const int dot = pb->metric == FKM_METRIC_DOT;
    int64_t *idx = ws->pair_idx; /* the pair stage is done with it */
    for (int64_t off = 0; off < m; off += ws->chunk) {
        const int64_t c = m - off < ws->chunk ? m - off : ws->chunk;
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(idx, ws->idx_h + off, (size_t)c * sizeof(int64_t), cudaMemcpyHostToDevice,
                                          stream));
        fkm_status s = FKM_OK;
        if (pb->dtype == FKM_F16) s = launch_gather<__half>(ctx, ws, pb, idx, c, stream);
        else if (pb->dtype == FKM_BF16) s = launch_gather<__nv_bfloat16>(ctx, ws, pb, idx, c, stream);
        else s = launch_gather<float>(ctx, ws, pb, idx, c, stream);
        if (s != FKM_OK) return s;
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->rows_h, ws->rows, (size_t)(c * d) * sizeof(float),
                                          cudaMemcpyDeviceToHost, stream));
        FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
        /* runs of points of one problem share its centroids */
        for (int64_t j0 = 0; j0 < c;) {
            const int64_t b = ws->idx_h[off + j0] / pb->n;
            int64_t j1 = j0 + 1;
            while (j1 < c && ws->idx_h[off + j1] / pb->n == b) j1++;
            if (fkm_exact_argmin_rows(ws->rows_h + j0 * d, j1 - j0, ws->cent_h + b * k * d, k, d, dot, n_threads,
                                      ws->lab_h + j0) != 0)
                return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the exact re-decision");
            j0 = j1;
        }
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->lab, ws->lab_h, (size_t)c * sizeof(int32_t), cudaMemcpyHostToDevice,
                                          stream));
        scatter_labels<<<blocks_for(c), EX_THREADS, 0, stream>>>(idx, ws->lab, c, labels);
        FKM_CUDA_LAUNCHED(ctx, "scatter_labels");
        /* the pinned buffers are reused by the next chunk */
        FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
    }
    return FKM_OK;
}

/* The fast kernel counted its own labels' changes: recount after the re-decision. */
static fkm_status recount(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb, const int32_t *labels,
                          unsigned long long *changed, cudaStream_t stream)
{
    FKM_CUDA_TRY(ctx, cudaMemsetAsync(changed, 0, (size_t)pb->batch * sizeof *changed, stream));
    const dim3 grid(blocks_for(pb->n), (unsigned)pb->batch);
    count_changed<<<grid, EX_THREADS, 0, stream>>>(labels, ws->prev, pb->n, changed);
    FKM_CUDA_LAUNCHED(ctx, "count_changed");
    return FKM_OK;
}

/* The carried certificates' step (EXACTNESS.md 5.5), batch 1: the centroids' moves since the
 * last assignment, each certified point's bounds moved; the points that keep their label need
 * no assignment. *gathered = 1 when the others (fewer than half) went through the top-3 pass
 * here, gathered in chunks, their outputs scattered to their slots; 0: the caller runs the
 * full pass (and certify then recertifies every point). */
template <typename T>
static fkm_status carry_step(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, fkm_cuda_assign_ws *aws, const fkm_dev_problem *pb,
                             const float *cent, int32_t *labels, unsigned long long *changed, int *gathered,
                             cudaStream_t stream)
{
    *gathered = 0;
    const int64_t n = ws->n_total, k = pb->k;
    centroid_moves<<<(unsigned)fkm_ceil_div(k, EX_THREADS / 32), EX_THREADS, 0, stream>>>(cent, ws->cprev, k, pb->d,
                                                                                         ws->cmove);
    FKM_CUDA_LAUNCHED(ctx, "centroid_moves");
    fkm_status s = fkm_cuda_max_per_problem(ctx, ws->cmove, k, 1, ws->cmove_max, stream);
    if (s != FKM_OK) return s;
    FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->cand_left, 0, sizeof(unsigned long long), stream));
    carry_points<<<blocks_for(n), EX_THREADS, 0, stream>>>(n, pb->n, k, pb->metric == FKM_METRIC_DOT, labels,
                                                            ws->xnorm, ws->cmove, ws->cmove_max, ws->clo, ws->chi,
                                                            ws->carried, ws->todo, ws->cand_left);
    FKM_CUDA_LAUNCHED(ctx, "carry_points");
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->flen_h, ws->cand_left, sizeof(unsigned long long), cudaMemcpyDeviceToHost,
                                      stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
    const int64_t m = (int64_t)ws->flen_h[0];
    if (2 * m >= n) return FKM_OK; /* most points to assign: the full pass is cheaper */
    /* the list sorted is not needed: each point's outputs go to its own slot */
    char *g = (char *)ws->glab_best;
    const int64_t ch = ws->cand_chunk;
    int32_t *glab = (int32_t *)g, *gsec_idx = (int32_t *)(g + 4 * ch);
    float *gbest = (float *)(g + 8 * ch), *gsec = (float *)(g + 12 * ch), *gthird = (float *)(g + 16 * ch);
    const fkm_cuda_top3_out gtop3 = {gsec, gthird, gsec_idx};
    for (int64_t off = 0; off < m; off += ch) {
        const int64_t c = m - off < ch ? m - off : ch;
        const unsigned blocks = (unsigned)fkm_ceil_div(c, EX_THREADS / 32);
        gather_input_rows<T><<<blocks, EX_THREADS, 0, stream>>>((const T *)pb->X, pb->n, pb->d, pb->ld,
                                                                 pb->batch_stride, ws->todo + off, c,
                                                                 (T *)ws->cand_rows, ws->cand_ld, ws->cand_pts);
        FKM_CUDA_LAUNCHED(ctx, "gather_input_rows");
        FKM_CUDA_TRY(ctx, cudaMemsetAsync(glab, 0, (size_t)c * sizeof(int32_t), stream));
        fkm_dev_problem gp = *pb;
        gp.X = ws->cand_rows;
        gp.n = c;
        gp.ld = ws->cand_ld;
        gp.batch = 1;
        gp.batch_stride = c * ws->cand_ld;
        if ((s = fkm_cuda_assign_top3(ctx, aws, &gp, cent, glab, changed, gbest, &gtop3, stream)) != FKM_OK) return s;
        carry_scatter<<<blocks_for(c), EX_THREADS, 0, stream>>>(ws->cand_pts, c, glab, gbest, gsec, gthird, gsec_idx,
                                                                labels, ws->best, ws->second, ws->third,
                                                                ws->second_idx);
        FKM_CUDA_LAUNCHED(ctx, "carry_scatter");
    }
    *gathered = 1;
    return FKM_OK;
}

fkm_status fkm_cuda_exact_assign(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, fkm_cuda_assign_ws *aws,
                                 const fkm_dev_problem *pb, const float *cent, int32_t *labels,
                                 unsigned long long *changed, int n_threads, fkm_cuda_exact_counts *counts,
                                 cudaStream_t stream)
{
    fkm_status s = FKM_OK;
    *counts = fkm_cuda_exact_counts{0, 0, 0, 0};
    if (!ws->xnorm_ready) {
        if (pb->dtype == FKM_F16) s = launch_row_norms<__half>(ctx, ws, pb, stream);
        else if (pb->dtype == FKM_BF16) s = launch_row_norms<__nv_bfloat16>(ctx, ws, pb, stream);
        else s = launch_row_norms<float>(ctx, ws, pb, stream);
        if (s != FKM_OK) return s;
        ws->xnorm_ready = 1;
    }
    /* centroid norms (rows of cent, f32), their operand rounding, each problem's largest of
     * both (max is exact: deterministic), and the f32 filter's bias */
    if (pb->dtype == FKM_F16) s = launch_centroid_norms<__half>(ctx, ws, pb, cent, stream);
    else if (pb->dtype == FKM_BF16) s = launch_centroid_norms<__nv_bfloat16>(ctx, ws, pb, cent, stream);
    else s = launch_centroid_norms<float>(ctx, ws, pb, cent, stream);
    if (s != FKM_OK) return s;
    if ((s = fkm_cuda_max_per_problem(ctx, ws->cnorm, pb->k, pb->batch, ws->cmax, stream)) != FKM_OK) return s;
    if ((s = fkm_cuda_max_per_problem(ctx, ws->cdelta, pb->k, pb->batch, ws->cdmax, stream)) != FKM_OK) return s;
    if (ws->cmu && (s = fkm_cuda_max_per_problem(ctx, ws->cmu, pb->k, pb->batch, ws->mumax, stream)) != FKM_OK)
        return s;

    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->prev, labels, (size_t)ws->n_total * sizeof(int32_t),
                                      cudaMemcpyDeviceToDevice, stream));
    int gathered = 0;
    if (ws->carry && ws->carry_ready && pb->k > 1) {
        if (pb->dtype == FKM_F16) s = carry_step<__half>(ctx, ws, aws, pb, cent, labels, changed, &gathered, stream);
        else if (pb->dtype == FKM_BF16)
            s = carry_step<__nv_bfloat16>(ctx, ws, aws, pb, cent, labels, changed, &gathered, stream);
        else s = carry_step<float>(ctx, ws, aws, pb, cent, labels, changed, &gathered, stream);
        if (s != FKM_OK) return s;
    }
    if (!gathered) {
        const fkm_cuda_top3_out top3 = {ws->second, ws->third, ws->second_idx};
        if ((s = fkm_cuda_assign_top3(ctx, aws, pb, cent, labels, changed, ws->best, &top3, stream)) != FKM_OK)
            return s;
        /* every point assigned again: certify decides them all */
        if (ws->carry) FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->carried, 0, (size_t)ws->n_total, stream));
    }
    if (ws->carry) { /* the next assignment's moves are from these centroids */
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->cprev, cent, (size_t)(ws->k_total * pb->d) * sizeof(float),
                                          cudaMemcpyDeviceToDevice, stream));
        ws->carry_ready = 1;
    }
    if (pb->k == 1) return FKM_OK; /* one centroid: nothing to decide */

    FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->count, 0, (size_t)(EX_C_FIXED + 2 * pb->batch) * sizeof(unsigned long long),
                                      stream));
    certify<<<blocks_for(ws->n_total), EX_THREADS, 0, stream>>>(ws->cert, ws->best, ws->second, ws->third, labels,
                                                                ws->xnorm, ws->xdelta, ws->cnorm, ws->cdelta,
                                                                ws->cmax, ws->cdmax, ws->mumax, ws->n_total,
                                                                pb->n, pb->k, ws->count, ws->pair_idx,
                                                                ws->filt_idx, ws->carry ? ws->carried : NULL,
                                                                ws->clo, ws->chi);
    FKM_CUDA_LAUNCHED(ctx, "certify");
    if (pb->dtype == FKM_F16) s = launch_device_stages_any<__half>(ctx, ws, aws, pb, cent, labels, stream);
    else if (pb->dtype == FKM_BF16)
        s = launch_device_stages_any<__nv_bfloat16>(ctx, ws, aws, pb, cent, labels, stream);
    else s = launch_device_stages_any<float>(ctx, ws, aws, pb, cent, labels, stream);
    if (s != FKM_OK) return s;
    /* recount now, so that nothing is left to launch after the one synchronisation unless
     * the host has points to re-decide (then it recounts again) */
    if ((s = recount(ctx, ws, pb, labels, changed, stream)) != FKM_OK) return s;
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->count_h, ws->count, EX_C_FIXED * sizeof(unsigned long long),
                                      cudaMemcpyDeviceToHost, stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
    const int64_t pair = (int64_t)ws->count_h[EX_C_PAIR], pair_host = (int64_t)ws->count_h[EX_C_PAIR_HOST];
    const int64_t filter = (int64_t)ws->count_h[EX_C_FILTER], m = (int64_t)ws->count_h[EX_C_HOST];
    counts->rechecked = pair + filter;
    counts->pair = pair - pair_host;
    counts->filter = filter - (m - pair_host);
    counts->host = m;
    if (m == 0) return FKM_OK;

    /* the list and the centroids to the host; the list sorted so that the work (and the
     * chunks) do not depend on the order of the atomics */
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->idx_h, ws->host_idx, (size_t)m * sizeof(int64_t), cudaMemcpyDeviceToHost,
                                      stream));
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->cent_h, cent, (size_t)(ws->k_total * pb->d) * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
    qsort(ws->idx_h, (size_t)m, sizeof(int64_t), cmp_i64);
    if ((s = redecide(ctx, ws, pb, m, labels, n_threads, stream)) != FKM_OK) return s;
    return recount(ctx, ws, pb, labels, changed, stream);
}
