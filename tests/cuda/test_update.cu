/* test_update.cu — the GPU sort-inverse update (src/cuda/update.cuh) against a plain fp64
 * host reference, plus its determinism, its accumulate mode, its optional outputs, its
 * argument checks, and agreement with the atomicAdd baseline (bench/update_atomic.cuh).
 * Batches: one call over B problems equals B single-problem calls bit for bit, and one call
 * over row pieces of the problems (fkm_cuda_update_parts, the resident path of backend.cu)
 * folded with fkm_cuda_update_fold equals the piece-by-piece accumulate calls (the streamed
 * path) bit for bit.
 *
 * Exit status: 0 pass, 1 fail, 77 skipped (no CUDA device).
 *
 * The reference is written from the contract alone: each point as f32 (cosine: normalised
 * like the CPU's fkm_load_row: squared norm summed in double in column order, the normalised
 * value rounded to f32), then per cluster, in point order, sum of w * x in double, sum of w;
 * per point ||x - c||^2 (l2, cosine) or -x.c (dot) in double; objective = sum of w * obj.
 *
 * Tolerances (the device adds in another, fixed, order; FMA contraction rounds once where the
 * reference rounds twice):
 *  - weights: exact (weights are multiples of 1/64 in [0.25, 4], so every partial sum is
 *    exactly representable and the order does not matter; no weights = counts);
 *  - sums, point objectives, objective: |dev - ref| <= 1e-12 * (sum of the |terms|);
 *  - cosine adds, per value, 2^-22 * the largest |term| (sums) or 2^-20 * the sum of the
 *    |terms| (objectives): the device sums the squared norm in another order, so in rare
 *    cases a normalised element rounds to the neighbouring f32 (one ulp, <= 2^-23 relative);
 *  - the atomic baseline: f64 1e-9, f32 1e-3 relative to the sum of the |terms|.
 *
 * The sort itself (point ids and clusters in sorted order) must equal the stable sort by
 * (problem, label) exactly, whichever scatter the counting path uses (FLASHKM_SCATTER_STAGE:
 * direct, whole tiles staged in shared memory, sub-tiles): run_sort_case, for plain batches and
 * for the same problems cut into parts (fkm_cuda_update_parts); section 8 of run_case checks the
 * pieces' sort as well. */
#include "cuda/update.cuh"
#include "../../bench/update_atomic.cuh"
#include "device_test.h"

#include <algorithm>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

/* ------------------------------------------------------------------ data */

enum label_mode { UNIFORM, SKEW };

typedef struct test_case {
    int batch;
    int64_t n, k, d, ld_extra;
    fkm_dtype dtype;
    fkm_metric metric;
    int weights;
    label_mode mode;
    double skew;        /* SKEW: probability of label 0 */
    int empty_every;    /* > 0: labels c with c % empty_every == empty_every - 1 (c > 0) stay empty */
    int zero_rows;      /* rows set to all zeros (cosine: they stay zero) */
} test_case;

/* The host copy of a problem: X in its storage format, labels, weights, centroids. */
typedef struct host_problem {
    std::vector<unsigned char> X;
    std::vector<int32_t> labels;
    std::vector<float> weights, C;
    int64_t ld, stride; /* elements */
    size_t es;
} host_problem;

static float elem_to_float(const host_problem &h, fkm_dtype dt, int64_t idx)
{
    const unsigned char *p = h.X.data() + (size_t)idx * h.es;
    switch (dt) {
    case FKM_F32: { float v; memcpy(&v, p, 4); return v; }
    case FKM_F16: { __half v; memcpy(&v, p, 2); return __half2float(v); }
    case FKM_BF16: { __nv_bfloat16 v; memcpy(&v, p, 2); return __bfloat162float(v); }
    case FKM_F64: { double v; memcpy(&v, p, 8); return (float)v; }
    }
    return 0.0f;
}
static double elem_to_double(const host_problem &h, fkm_dtype dt, int64_t idx)
{
    if (dt == FKM_F64) {
        double v;
        memcpy(&v, h.X.data() + (size_t)idx * h.es, 8);
        return v;
    }
    return elem_to_float(h, dt, idx);
}

static void make_problem(const test_case &tc, uint64_t seed, host_problem &h)
{
    uint64_t s = seed;
    h.es = fkm_dtype_size(tc.dtype);
    h.ld = tc.d + tc.ld_extra;
    h.stride = tc.n * h.ld + 3; /* problems not packed: batch_stride > n * ld */
    const int64_t total = (int64_t)tc.batch * h.stride;
    h.X.assign((size_t)total * h.es, 0);
    for (int64_t e = 0; e < total; e++) {
        const double v = 2.0 * rng_unif(&s) - 1.0 + (tc.metric == FKM_METRIC_COSINE ? 0.3 : 0.0);
        unsigned char *p = h.X.data() + (size_t)e * h.es;
        switch (tc.dtype) {
        case FKM_F32: { float f = (float)v; memcpy(p, &f, 4); } break;
        case FKM_F16: { __half f = __float2half((float)v); memcpy(p, &f, 2); } break;
        case FKM_BF16: { __nv_bfloat16 f = __float2bfloat16((float)v); memcpy(p, &f, 2); } break;
        case FKM_F64: memcpy(p, &v, 8); break;
        }
    }
    for (int b = 0; b < tc.batch; b++)
        for (int z = 0; z < tc.zero_rows; z++) {
            const int64_t i = (int64_t)(rng_next(&s) % (uint64_t)tc.n);
            memset(h.X.data() + (size_t)(b * h.stride + i * h.ld) * h.es, 0, (size_t)tc.d * h.es);
        }
    h.labels.resize((size_t)(tc.batch * tc.n));
    for (auto &L : h.labels) {
        int64_t c;
        if (tc.mode == SKEW && rng_unif(&s) < tc.skew) c = 0;
        else c = (int64_t)(rng_next(&s) % (uint64_t)tc.k);
        if (tc.empty_every > 0 && c > 0 && c % tc.empty_every == tc.empty_every - 1) c--;
        L = (int32_t)c;
    }
    h.weights.clear();
    if (tc.weights) {
        h.weights.resize((size_t)(tc.batch * tc.n));
        for (auto &w : h.weights) w = (float)(16 + (int)(rng_next(&s) % 241)) / 64.0f; /* [0.25, 4] */
    }
    h.C.resize((size_t)(tc.batch * tc.k * tc.d));
    for (auto &c : h.C) c = (float)(rng_unif(&s) - 0.5);
}

/* ------------------------------------------------------------------ reference */

typedef struct reference {
    std::vector<double> sums, sums_abs, sums_max, weight, pobj, pobj_abs, obj, obj_abs;
} reference;

/* point i of problem b as f32, normalised for cosine like fkm_load_row */
static void ref_row(const test_case &tc, const host_problem &h, int b, int64_t i, float *out)
{
    const int64_t base = b * h.stride + i * h.ld;
    for (int64_t j = 0; j < tc.d; j++) out[j] = elem_to_float(h, tc.dtype, base + j);
    if (tc.metric != FKM_METRIC_COSINE) return;
    double ss = 0.0;
    for (int64_t j = 0; j < tc.d; j++) {
        const double v = tc.dtype == FKM_F64 ? elem_to_double(h, tc.dtype, base + j) : (double)out[j];
        ss += v * v;
    }
    if (ss > 0.0) {
        const double inv = 1.0 / sqrt(ss);
        for (int64_t j = 0; j < tc.d; j++) {
            const double v = tc.dtype == FKM_F64 ? elem_to_double(h, tc.dtype, base + j) : (double)out[j];
            out[j] = (float)(v * inv);
        }
    }
}

static void compute_reference(const test_case &tc, const host_problem &h, int64_t n_used, reference &r)
{
    const int64_t k = tc.k, d = tc.d;
    r.sums.assign((size_t)(tc.batch * k * d), 0.0);
    r.sums_abs.assign(r.sums.size(), 0.0);
    r.sums_max.assign(r.sums.size(), 0.0);
    r.weight.assign((size_t)(tc.batch * k), 0.0);
    r.pobj.assign((size_t)(tc.batch * n_used), 0.0);
    r.pobj_abs.assign(r.pobj.size(), 0.0);
    r.obj.assign((size_t)tc.batch, 0.0);
    r.obj_abs.assign((size_t)tc.batch, 0.0);
    std::vector<float> x((size_t)d);
    for (int b = 0; b < tc.batch; b++)
        for (int64_t i = 0; i < n_used; i++) {
            const int64_t c = h.labels[(size_t)(b * tc.n + i)];
            const double w = h.weights.empty() ? 1.0 : (double)h.weights[(size_t)(b * tc.n + i)];
            ref_row(tc, h, b, i, x.data());
            const float *cen = h.C.data() + (size_t)((b * k + c) * d);
            double o = 0.0, oa = 0.0;
            for (int64_t j = 0; j < d; j++) {
                const size_t e = (size_t)((b * k + c) * d + j);
                const double t = w * (double)x[(size_t)j];
                r.sums[e] += t;
                r.sums_abs[e] += fabs(t);
                if (fabs(t) > r.sums_max[e]) r.sums_max[e] = fabs(t);
                double term;
                if (tc.metric == FKM_METRIC_DOT) term = -((double)x[(size_t)j] * (double)cen[j]);
                else {
                    const double df = (double)x[(size_t)j] - (double)cen[j];
                    term = df * df;
                }
                o += term;
                oa += fabs(term);
            }
            r.weight[(size_t)(b * k + c)] += w;
            r.pobj[(size_t)(b * n_used + i)] = o;
            r.pobj_abs[(size_t)(b * n_used + i)] = oa;
            r.obj[(size_t)b] += w * o;
            r.obj_abs[(size_t)b] += w * oa;
        }
}

/* ------------------------------------------------------------------ device side */

typedef struct dev_buffers {
    void *X;
    int32_t *labels;
    float *weights, *C;
    double *sums, *weight, *pobj, *obj;
} dev_buffers;

typedef struct outputs {
    std::vector<double> sums, weight, pobj, obj;
} outputs;

static void fetch(const dev_buffers &db, outputs &o, size_t nsums, size_t nw, size_t npobj, size_t nobj)
{
    o.sums.resize(nsums);
    o.weight.resize(nw);
    o.pobj.resize(npobj);
    o.obj.resize(nobj);
    CU(cudaMemcpy(o.sums.data(), db.sums, nsums * 8, cudaMemcpyDeviceToHost));
    CU(cudaMemcpy(o.weight.data(), db.weight, nw * 8, cudaMemcpyDeviceToHost));
    CU(cudaMemcpy(o.pobj.data(), db.pobj, npobj * 8, cudaMemcpyDeviceToHost));
    CU(cudaMemcpy(o.obj.data(), db.obj, nobj * 8, cudaMemcpyDeviceToHost));
}

static bool same_bits(const std::vector<double> &a, const std::vector<double> &b)
{
    return a.size() == b.size() && (a.empty() || memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

/* dev against ref: returns the number of mismatches (reports the first few) */
static int compare(const char *what, int ci, const std::vector<double> &dev, const std::vector<double> &ref,
                   const std::vector<double> &mag, const std::vector<double> *mag2, double rel, double rel2)
{
    int bad = 0;
    for (size_t e = 0; e < ref.size(); e++) {
        const double tol = rel * mag[e] + (mag2 ? rel2 * (*mag2)[e] : 0.0) + 1e-300;
        if (!(fabs(dev[e] - ref[e]) <= tol)) {
            if (bad < 3)
                fprintf(stderr, "case %d: %s[%zu] = %.17g, reference %.17g (|diff| %.3g > tol %.3g)\n", ci, what, e,
                        dev[e], ref[e], fabs(dev[e] - ref[e]), tol);
            bad++;
        }
    }
    return bad;
}

static void check_against(const test_case &tc, int ci, const outputs &o, const reference &r)
{
    const bool cos = tc.metric == FKM_METRIC_COSINE;
    EXPECT(compare("weight", ci, o.weight, r.weight, r.weight, NULL, 0.0, 0.0) == 0, "case %d: weights not exact", ci);
    EXPECT(compare("sums", ci, o.sums, r.sums, r.sums_abs, cos ? &r.sums_max : NULL, 1e-12, 0x1.0p-22) == 0,
           "case %d: sums", ci);
    EXPECT(compare("point_obj", ci, o.pobj, r.pobj, r.pobj_abs, cos ? &r.pobj_abs : NULL, 1e-12, 0x1.0p-20) == 0,
           "case %d: point objectives", ci);
    EXPECT(compare("objective", ci, o.obj, r.obj, r.obj_abs, cos ? &r.obj_abs : NULL, 1e-12, 0x1.0p-20) == 0,
           "case %d: objective", ci);
}

/* The sort against its definition: per problem, per label, the points in index order. An
 * out-of-range label is dropped by the counting path and sorted into cluster 0 of its problem
 * by the radix path (k > 4096), as update.cu documents. parts > 1: the call's problems are
 * parts of n rows of problems of src_n rows (fkm_cuda_update_parts; problem b = part b % parts
 * of source problem b / parts, its rows within the part). Returns the number of mismatches. */
static int check_sort(const fkm_cuda_update_ws *ws, const int32_t *labels, int batch, int64_t n, int64_t k,
                      const char *what, int64_t parts = 1, int64_t src_n = -1)
{
    const bool radix = fkm_cuda_update_scatter_stage(ws) < 0;
    if (src_n < 0) src_n = n;
    std::vector<uint32_t> ro, rg;
    std::vector<int64_t> cnt((size_t)k + 1);
    for (int b = 0; b < batch; b++) {
        const int64_t s = b / parts, j = b % parts;
        const int64_t rows = src_n - j * n < n ? src_n - j * n : n;
        const int32_t *lab = labels + s * src_n + j * n;
        std::fill(cnt.begin(), cnt.end(), 0);
        std::vector<int32_t> L((size_t)rows);
        for (int64_t i = 0; i < rows; i++) {
            int32_t v = lab[i];
            if (v < 0 || v >= k) v = radix ? 0 : -1;
            L[(size_t)i] = v;
            if (v >= 0) cnt[(size_t)v + 1]++;
        }
        for (int64_t c = 0; c < k; c++) cnt[(size_t)c + 1] += cnt[(size_t)c];
        const size_t base = ro.size();
        ro.resize(base + (size_t)cnt[(size_t)k]);
        rg.resize(ro.size());
        for (int64_t i = 0; i < rows; i++)
            if (L[(size_t)i] >= 0) {
                const size_t slot = base + (size_t)cnt[(size_t)L[(size_t)i]]++;
                ro[slot] = (uint32_t)i;
                rg[slot] = (uint32_t)(b * k + L[(size_t)i]);
            }
    }
    const uint32_t *d_order = NULL, *d_g = NULL;
    fkm_cuda_update_sorted(ws, &d_order, &d_g);
    std::vector<uint32_t> o(ro.size()), g(ro.size());
    if (!ro.empty()) {
        CU(cudaMemcpy(o.data(), d_order, o.size() * 4, cudaMemcpyDeviceToHost));
        CU(cudaMemcpy(g.data(), d_g, g.size() * 4, cudaMemcpyDeviceToHost));
    }
    int bad = 0;
    for (size_t e = 0; e < ro.size(); e++)
        if (o[e] != ro[e] || g[e] != rg[e]) {
            if (bad < 3)
                fprintf(stderr, "%s: sorted slot %zu holds point %u cluster %u, the stable sort point %u cluster %u\n",
                        what, e, o[e], g[e], ro[e], rg[e]);
            bad++;
        }
    return bad;
}

static void run_case(fkm_ctx *ctx, const test_case &tc, int ci)
{
    host_problem h;
    make_problem(tc, 1000 + (uint64_t)ci * 7919, h);
    reference ref;
    compute_reference(tc, h, tc.n, ref);

    dev_buffers db;
    const size_t nsums = (size_t)(tc.batch * tc.k * tc.d), nw = (size_t)(tc.batch * tc.k),
                 npobj = (size_t)(tc.batch * tc.n), nobj = (size_t)tc.batch;
    CU(cudaMalloc(&db.X, h.X.size()));
    CU(cudaMemcpy(db.X, h.X.data(), h.X.size(), cudaMemcpyHostToDevice));
    CU(cudaMalloc((void **)&db.labels, h.labels.size() * 4));
    CU(cudaMemcpy(db.labels, h.labels.data(), h.labels.size() * 4, cudaMemcpyHostToDevice));
    db.weights = NULL;
    if (tc.weights) {
        CU(cudaMalloc((void **)&db.weights, h.weights.size() * 4));
        CU(cudaMemcpy(db.weights, h.weights.data(), h.weights.size() * 4, cudaMemcpyHostToDevice));
    }
    CU(cudaMalloc((void **)&db.C, h.C.size() * 4));
    CU(cudaMemcpy(db.C, h.C.data(), h.C.size() * 4, cudaMemcpyHostToDevice));
    CU(cudaMalloc((void **)&db.sums, nsums * 8));
    CU(cudaMalloc((void **)&db.weight, nw * 8));
    CU(cudaMalloc((void **)&db.pobj, npobj * 8));
    CU(cudaMalloc((void **)&db.obj, nobj * 8));
    /* garbage in the outputs: accumulate = 0 must overwrite it */
    CU(cudaMemset(db.sums, 0x7f, nsums * 8));
    CU(cudaMemset(db.weight, 0x7f, nw * 8));
    CU(cudaMemset(db.pobj, 0x7f, npobj * 8));
    CU(cudaMemset(db.obj, 0x7f, nobj * 8));

    fkm_dev_problem pb;
    memset(&pb, 0, sizeof pb);
    pb.X = db.X;
    pb.dtype = tc.dtype;
    pb.n = tc.n;
    pb.d = tc.d;
    pb.ld = h.ld;
    pb.batch_stride = h.stride;
    pb.batch = tc.batch;
    pb.weights = db.weights;
    pb.k = tc.k;
    pb.metric = tc.metric;

    cudaStream_t stream;
    CU(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    fkm_cuda_update_ws *ws = NULL;
    fkm_status st = fkm_cuda_update_create(ctx, &pb, &ws);
    EXPECT(st == FKM_OK, "case %d: create: %s", ci, fkm_last_error(ctx));
    if (st != FKM_OK) exit(1);

    /* 1. against the reference */
    st = fkm_cuda_update(ctx, ws, &pb, db.labels, db.C, db.sums, db.weight, db.pobj, db.obj, 0, stream);
    EXPECT(st == FKM_OK, "case %d: update: %s", ci, fkm_last_error(ctx));
    CU(cudaStreamSynchronize(stream));
    CU(cudaGetLastError());
    outputs o1;
    fetch(db, o1, nsums, nw, npobj, nobj);
    check_against(tc, ci, o1, ref);
    EXPECT(check_sort(ws, h.labels.data(), tc.batch, tc.n, tc.k, "sort") == 0, "case %d: sort", ci);

    /* 2. run to run: bitwise equal (with per-stage timing on, which must not change anything) */
    fkm_cuda_update_set_timing(ws, 1);
    CU(cudaMemset(db.sums, 0x55, nsums * 8));
    st = fkm_cuda_update(ctx, ws, &pb, db.labels, db.C, db.sums, db.weight, db.pobj, db.obj, 0, stream);
    EXPECT(st == FKM_OK, "case %d: update 2: %s", ci, fkm_last_error(ctx));
    fkm_cuda_update_set_timing(ws, 0);
    const fkm_cuda_update_times t = fkm_cuda_update_last_times(ws);
    EXPECT(t.histogram >= 0 && t.scan >= 0 && t.scatter >= 0 && t.reduce >= 0 && t.combine >= 0 &&
               t.histogram + t.scan + t.scatter + t.reduce + t.combine > 0,
           "case %d: stage times %g %g %g %g %g", ci, t.histogram, t.scan, t.scatter, t.reduce, t.combine);
    CU(cudaStreamSynchronize(stream));
    outputs o2;
    fetch(db, o2, nsums, nw, npobj, nobj);
    EXPECT(same_bits(o1.sums, o2.sums) && same_bits(o1.weight, o2.weight) && same_bits(o1.pobj, o2.pobj) &&
               same_bits(o1.obj, o2.obj),
           "case %d: two runs differ", ci);

    /* 2b. without point objectives: for L2 and DOT with aligned rows of whole 16-byte vectors the
     * reduce runs its lean variant (RED_L2 / RED_DOT in update.cu), run 1 (point objectives asked
     * for) the general one: sums, weights and objective must be the same bits */
    CU(cudaMemset(db.sums, 0x55, nsums * 8));
    CU(cudaMemset(db.weight, 0x55, nw * 8));
    CU(cudaMemset(db.obj, 0x55, nobj * 8));
    st = fkm_cuda_update(ctx, ws, &pb, db.labels, db.C, db.sums, db.weight, NULL, db.obj, 0, stream);
    EXPECT(st == FKM_OK, "case %d: update (no point objectives): %s", ci, fkm_last_error(ctx));
    CU(cudaStreamSynchronize(stream));
    {
        outputs ol;
        fetch(db, ol, nsums, nw, 0, nobj);
        EXPECT(same_bits(o1.sums, ol.sums) && same_bits(o1.weight, ol.weight) && same_bits(o1.obj, ol.obj),
               "case %d: the reduce without point objectives (lean variant) differs from the general one", ci);
    }

    /* 3. accumulate: a second pass added to the first gives exactly twice (x + x = 2x) */
    st = fkm_cuda_update(ctx, ws, &pb, db.labels, db.C, db.sums, db.weight, db.pobj, db.obj, 1, stream);
    EXPECT(st == FKM_OK, "case %d: update accumulate: %s", ci, fkm_last_error(ctx));
    CU(cudaStreamSynchronize(stream));
    outputs o3;
    fetch(db, o3, nsums, nw, npobj, nobj);
    {
        int bad = 0;
        for (size_t e = 0; e < nsums; e++) bad += o3.sums[e] != 2.0 * o1.sums[e];
        for (size_t e = 0; e < nw; e++) bad += o3.weight[e] != 2.0 * o1.weight[e];
        for (size_t e = 0; e < nobj; e++) bad += o3.obj[e] != 2.0 * o1.obj[e];
        EXPECT(bad == 0, "case %d: accumulate: %d values are not exactly twice the first pass", ci, bad);
        EXPECT(same_bits(o1.pobj, o3.pobj), "case %d: accumulate changed the point objectives", ci);
    }

    /* 4. optional outputs: objectives only, then weights only; the same bits as the full run */
    CU(cudaMemset(db.pobj, 0, npobj * 8));
    CU(cudaMemset(db.obj, 0, nobj * 8));
    st = fkm_cuda_update(ctx, ws, &pb, db.labels, db.C, NULL, NULL, db.pobj, db.obj, 0, stream);
    EXPECT(st == FKM_OK, "case %d: update (objectives only): %s", ci, fkm_last_error(ctx));
    CU(cudaMemset(db.weight, 0, nw * 8));
    st = fkm_cuda_update(ctx, ws, &pb, db.labels, db.C, NULL, db.weight, NULL, NULL, 0, stream);
    EXPECT(st == FKM_OK, "case %d: update (weights only): %s", ci, fkm_last_error(ctx));
    CU(cudaStreamSynchronize(stream));
    outputs o4;
    fetch(db, o4, nsums, nw, npobj, nobj);
    EXPECT(same_bits(o1.pobj, o4.pobj) && same_bits(o1.obj, o4.obj), "case %d: objectives-only run differs", ci);
    EXPECT(same_bits(o1.weight, o4.weight), "case %d: weights-only run differs", ci);

    /* 5. fewer points than the workspace was made for (the last chunk of streamed data) */
    {
        const int64_t n2 = tc.n > 20 ? tc.n - 17 : tc.n;
        fkm_dev_problem pb2 = pb;
        pb2.n = n2;
        /* labels and weights of problem b start at b * n2: repack them */
        std::vector<int32_t> lab2((size_t)(tc.batch * n2));
        std::vector<float> w2(tc.weights ? (size_t)(tc.batch * n2) : 0);
        for (int b = 0; b < tc.batch; b++)
            for (int64_t i = 0; i < n2; i++) {
                lab2[(size_t)(b * n2 + i)] = h.labels[(size_t)(b * tc.n + i)];
                if (tc.weights) w2[(size_t)(b * n2 + i)] = h.weights[(size_t)(b * tc.n + i)];
            }
        host_problem h2 = h;
        h2.labels.assign((size_t)(tc.batch * tc.n), 0);
        h2.weights.assign(tc.weights ? (size_t)(tc.batch * tc.n) : 0, 0.0f);
        for (int b = 0; b < tc.batch; b++)
            for (int64_t i = 0; i < n2; i++) {
                /* compute_reference indexes labels with the case's n: lay them out that way */
                h2.labels[(size_t)(b * tc.n + i)] = lab2[(size_t)(b * n2 + i)];
                if (tc.weights) h2.weights[(size_t)(b * tc.n + i)] = w2[(size_t)(b * n2 + i)];
            }
        reference ref2;
        compute_reference(tc, h2, n2, ref2);
        CU(cudaMemcpy(db.labels, lab2.data(), lab2.size() * 4, cudaMemcpyHostToDevice));
        if (tc.weights) CU(cudaMemcpy(db.weights, w2.data(), w2.size() * 4, cudaMemcpyHostToDevice));
        st = fkm_cuda_update(ctx, ws, &pb2, db.labels, db.C, db.sums, db.weight, db.pobj, db.obj, 0, stream);
        EXPECT(st == FKM_OK, "case %d: update (n = %lld): %s", ci, (long long)n2, fkm_last_error(ctx));
        CU(cudaStreamSynchronize(stream));
        outputs o5;
        fetch(db, o5, nsums, nw, (size_t)(tc.batch * n2), nobj);
        check_against(tc, ci, o5, ref2);
        EXPECT(check_sort(ws, lab2.data(), tc.batch, n2, tc.k, "sort (fewer points)") == 0, "case %d: sort (n = %lld)",
               ci, (long long)n2);
        CU(cudaMemcpy(db.labels, h.labels.data(), h.labels.size() * 4, cudaMemcpyHostToDevice));
        if (tc.weights) CU(cudaMemcpy(db.weights, h.weights.data(), h.weights.size() * 4, cudaMemcpyHostToDevice));
    }

    /* 6. the atomicAdd baseline agrees within its (much looser) tolerance */
    {
        fkm_atomic_update_ws *aws = NULL;
        st = fkm_atomic_update_create(ctx, &pb, &aws);
        EXPECT(st == FKM_OK, "case %d: atomic create: %s", ci, fkm_last_error(ctx));
        for (int p = 0; p < 2 && st == FKM_OK; p++) {
            st = fkm_atomic_update(ctx, aws, &pb, db.labels, p ? FKM_ATOMIC_F64 : FKM_ATOMIC_F32, db.sums, db.weight,
                                   stream);
            EXPECT(st == FKM_OK, "case %d: atomic update: %s", ci, fkm_last_error(ctx));
            CU(cudaStreamSynchronize(stream));
            outputs oa;
            fetch(db, oa, nsums, nw, npobj, nobj);
            const double rel = p ? 1e-9 : 1e-3;
            EXPECT(compare(p ? "atomic f64 sums" : "atomic f32 sums", ci, oa.sums, ref.sums, ref.sums_abs,
                           tc.metric == FKM_METRIC_COSINE ? &ref.sums_max : NULL, rel, 0x1.0p-22) == 0,
                   "case %d: atomic %s sums", ci, p ? "f64" : "f32");
            EXPECT(compare(p ? "atomic f64 weight" : "atomic f32 weight", ci, oa.weight, ref.weight, ref.weight, NULL,
                           rel, 0.0) == 0,
                   "case %d: atomic %s weights", ci, p ? "f64" : "f32");
        }
        fkm_atomic_update_destroy(aws);
    }

    /* 7. problems are independent: each problem alone gives the bits of the batched call */
    if (tc.batch > 1) {
        int bad = 0;
        for (int b = 0; b < tc.batch; b++) {
            fkm_dev_problem one = pb;
            one.batch = 1;
            one.X = (const unsigned char *)db.X + (size_t)(b * h.stride) * h.es;
            one.weights = db.weights ? db.weights + b * tc.n : NULL;
            CU(cudaMemset(db.sums, 0x7f, nsums * 8));
            st = fkm_cuda_update(ctx, ws, &one, db.labels + b * tc.n, db.C + b * tc.k * tc.d, db.sums, db.weight,
                                 db.pobj, db.obj, 0, stream);
            EXPECT(st == FKM_OK, "case %d: update of problem %d alone: %s", ci, b, fkm_last_error(ctx));
            CU(cudaStreamSynchronize(stream));
            outputs ob;
            fetch(db, ob, (size_t)(tc.k * tc.d), (size_t)tc.k, (size_t)tc.n, 1);
            bad += memcmp(ob.sums.data(), o1.sums.data() + b * tc.k * tc.d, (size_t)(tc.k * tc.d) * 8) != 0;
            bad += memcmp(ob.weight.data(), o1.weight.data() + b * tc.k, (size_t)tc.k * 8) != 0;
            bad += memcmp(ob.pobj.data(), o1.pobj.data() + b * tc.n, (size_t)tc.n * 8) != 0;
            bad += memcmp(ob.obj.data(), o1.obj.data() + b, 8) != 0;
        }
        EXPECT(bad == 0, "case %d: %d outputs of single-problem calls differ from the batched call", ci, bad);
    }

    /* 8. pieces: each problem cut into row pieces of m rows (the last shorter when m does not
     * divide n). Streamed path: one call per piece, accumulate on after the problem's first.
     * Resident path: one fkm_cuda_update_parts call over every piece of every problem, then
     * the fold. Bitwise equal (sums, weights, objectives, and the point objectives, which must
     * also equal the unpieced run's). Two cuts: n/3 rounded up (a shorter last piece unless
     * it divides n) and a divisor of n when there is a small one. */
    for (int cut = 0; cut < 2; cut++) {
        int64_t m = (tc.n + 2) / 3;
        if (cut == 1) {
            m = 0;
            for (int64_t q = 2; q <= 7 && !m; q++)
                if (tc.n % q == 0) m = tc.n / q;
            if (!m) continue;
        }
        const int64_t per = fkm_ceil_div(tc.n, m), B = tc.batch;
        st = FKM_OK;
        /* streamed: piece by piece, problem by problem */
        CU(cudaMemset(db.pobj, 0x7f, npobj * 8));
        for (int b = 0; b < tc.batch && st == FKM_OK; b++)
            for (int64_t j = 0; j < per && st == FKM_OK; j++) {
                fkm_dev_problem v = pb;
                const int64_t r0 = j * m;
                v.batch = 1;
                v.n = tc.n - r0 < m ? tc.n - r0 : m;
                v.X = (const unsigned char *)db.X + (size_t)(b * h.stride + r0 * h.ld) * h.es;
                v.weights = db.weights ? db.weights + b * tc.n + r0 : NULL;
                st = fkm_cuda_update(ctx, ws, &v, db.labels + b * tc.n + r0, db.C + b * tc.k * tc.d,
                                     db.sums + b * tc.k * tc.d, db.weight + b * tc.k, db.pobj + b * tc.n + r0,
                                     db.obj + b, j > 0, stream);
            }
        EXPECT(st == FKM_OK, "case %d: piece-by-piece update: %s", ci, fkm_last_error(ctx));
        CU(cudaStreamSynchronize(stream));
        outputs os;
        fetch(db, os, nsums, nw, npobj, nobj);
        /* resident: the pieces as the problems of one call */
        fkm_dev_problem pieces = pb;
        pieces.batch = (int32_t)(B * per);
        pieces.n = m;
        fkm_cuda_update_ws *pws = NULL;
        st = fkm_cuda_update_create(ctx, &pieces, &pws);
        EXPECT(st == FKM_OK, "case %d: pieces workspace: %s", ci, fkm_last_error(ctx));
        if (st != FKM_OK) break;
        double *ps, *pw, *po;
        CU(cudaMalloc((void **)&ps, (size_t)(B * per * tc.k * tc.d) * 8));
        CU(cudaMalloc((void **)&pw, (size_t)(B * per * tc.k) * 8));
        CU(cudaMalloc((void **)&po, (size_t)(B * per) * 8));
        CU(cudaMemset(db.sums, 0x7f, nsums * 8));
        CU(cudaMemset(db.weight, 0x7f, nw * 8));
        CU(cudaMemset(db.obj, 0x7f, nobj * 8));
        CU(cudaMemset(db.pobj, 0x7f, npobj * 8));
        st = fkm_cuda_update_parts(ctx, pws, &pieces, tc.n, db.labels, db.C, ps, pw, db.pobj, po, 0, stream);
        EXPECT(st == FKM_OK, "case %d: update over the pieces: %s", ci, fkm_last_error(ctx));
        if (st == FKM_OK)
            st = fkm_cuda_update_fold(ctx, B, per, tc.k, tc.d, ps, pw, po, db.sums, db.weight, db.obj, stream);
        EXPECT(st == FKM_OK, "case %d: fold: %s", ci, fkm_last_error(ctx));
        CU(cudaStreamSynchronize(stream));
        CU(cudaGetLastError());
        outputs orr;
        fetch(db, orr, nsums, nw, npobj, nobj);
        EXPECT(same_bits(os.sums, orr.sums) && same_bits(os.weight, orr.weight) && same_bits(os.obj, orr.obj),
               "case %d: pieces of %lld rows: one call and the fold differ from the piece-by-piece calls", ci,
               (long long)m);
        EXPECT(same_bits(os.pobj, o1.pobj) && same_bits(orr.pobj, o1.pobj),
               "case %d: pieces of %lld rows: point objectives differ", ci, (long long)m);
        check_against(tc, ci, orr, ref);
        EXPECT(check_sort(pws, h.labels.data(), (int)(B * per), m, tc.k, "sort (pieces)", per, tc.n) == 0,
               "case %d: sort of the pieces of %lld rows", ci, (long long)m);
        /* a batch that is not a multiple of the pieces per problem is refused */
        if (per > 1) {
            fkm_dev_problem bad = pieces;
            bad.batch = (int32_t)(B * per - 1);
            EXPECT(fkm_cuda_update_parts(ctx, pws, &bad, tc.n, db.labels, db.C, ps, pw, NULL, po, 0, stream) ==
                       FKM_E_INVALID,
                   "case %d: a batch of %lld parts of %lld per problem was accepted", ci, (long long)(B * per - 1),
                   (long long)per);
        }
        cudaFree(ps);
        cudaFree(pw);
        cudaFree(po);
        fkm_cuda_update_destroy(pws);
        if (st != FKM_OK) break;
    }

    fkm_cuda_update_destroy(ws);
    CU(cudaStreamDestroy(stream));
    cudaFree(db.X);
    cudaFree(db.labels);
    cudaFree(db.weights);
    cudaFree(db.C);
    cudaFree(db.sums);
    cudaFree(db.weight);
    cudaFree(db.pobj);
    cudaFree(db.obj);
    CU(cudaGetLastError());
}

/* The sort alone, for each scatter of the counting path (FLASHKM_SCATTER_STAGE, read at create:
 * NULL = the default for the shape, "0" = direct, "1024" = staged sub-tiles of 1024 points,
 * "32768" = whole tiles staged where they fit), n not a multiple of the tile, several problems,
 * optionally some labels out of range (negative, k, INT32_MAX: dropped, never written out of
 * bounds; the update's results are then unspecified, only the sort is checked). The same
 * problems also as parts (fkm_cuda_update_parts) of about n/3 rows and of n - 100 rows (the
 * last part 100 rows: its later tiles hold no points). bad_labels = 2: no bad labels, but clumped
 * ones instead: each run of 3000 points takes 5 labels of its own, so most (tile, label) counts
 * are zero, some labels occur in one tile only and (k > 5 * runs) many clusters are empty. */
static void run_sort_case(fkm_ctx *ctx, int batch, int64_t n, int64_t k, int bad_labels, uint64_t seed)
{
    std::vector<int32_t> labels((size_t)(batch * n));
    uint64_t s = seed;
    for (size_t i = 0; i < labels.size(); i++) {
        int32_t &L = labels[i];
        L = (int32_t)(rng_next(&s) % (uint64_t)k);
        if (bad_labels == 2) L = (int32_t)((((uint64_t)i / 3000) * 37 + rng_next(&s) % 5) % (uint64_t)k);
        if (bad_labels == 1 && rng_next(&s) % 16 == 0) {
            const int32_t bad[3] = {-1, (int32_t)k, INT32_MAX};
            L = bad[rng_next(&s) % 3];
        }
    }
    const int64_t d = 4;
    float *X, *C;
    int32_t *dl;
    double *weight;
    CU(cudaMalloc((void **)&X, (size_t)(batch * n * d) * 4));
    CU(cudaMemset(X, 0, (size_t)(batch * n * d) * 4));
    CU(cudaMalloc((void **)&C, (size_t)(batch * k * d) * 4));
    CU(cudaMemset(C, 0, (size_t)(batch * k * d) * 4));
    CU(cudaMalloc((void **)&dl, labels.size() * 4));
    CU(cudaMemcpy(dl, labels.data(), labels.size() * 4, cudaMemcpyHostToDevice));
    CU(cudaMalloc((void **)&weight, (size_t)(batch * 3 * k) * 8)); /* parts: at most 3 per problem */
    fkm_dev_problem pb = {X, FKM_F32, n, d, d, n * d, (int32_t)batch, NULL, k, FKM_METRIC_L2};
    const char *stages[4] = {NULL, "0", "1024", "32768"};
    int64_t stage1024 = -1; /* the stage FLASHKM_SCATTER_STAGE=1024 gave (si == 2) */
    for (int si = 0; si < 4; si++) {
        if (stages[si]) setenv("FLASHKM_SCATTER_STAGE", stages[si], 1);
        else unsetenv("FLASHKM_SCATTER_STAGE");
        fkm_cuda_update_ws *ws = NULL;
        fkm_status st = fkm_cuda_update_create(ctx, &pb, &ws);
        EXPECT(st == FKM_OK, "sort case: create: %s", fkm_last_error(ctx));
        if (st != FKM_OK) break;
        const int64_t stage = fkm_cuda_update_scatter_stage(ws);
        /* the default stages whole tiles up to k = 1024 (scatter_stage); 0 and 1024 are taken as
         * asked; 32768 is cut to the tile and halved while the device's shared memory is short,
         * so it gives a power of two from 256 to 32768, never less than what 1024 gave (halving
         * stops at the first size that fits), or 0 only where 1024 did not fit either */
        if (k <= 4096) {
            int ok;
            if (si == 0) ok = (stage > 0) == (k <= 1024);
            else if (si < 3) ok = stage == atoll(stages[si]);
            else
                ok = stage == 0 ? stage1024 == 0
                                : stage >= 256 && stage <= 32768 && (stage & (stage - 1)) == 0 && stage >= stage1024;
            EXPECT(ok, "k %lld: scatter stage %lld for FLASHKM_SCATTER_STAGE=%s (1024 gave %lld)", (long long)k,
                   (long long)stage, stages[si] ? stages[si] : "(unset)", (long long)stage1024);
        }
        if (si == 2) stage1024 = stage;
        st = fkm_cuda_update(ctx, ws, &pb, dl, C, NULL, weight, NULL, NULL, 0, 0);
        EXPECT(st == FKM_OK, "sort case: update: %s", fkm_last_error(ctx));
        CU(cudaDeviceSynchronize());
        char what[160];
        snprintf(what, sizeof what, "sort (batch %d, n %lld, k %lld, bad labels %d, scatter stage %lld)", batch,
                 (long long)n, (long long)k, bad_labels, (long long)stage);
        const int bad = check_sort(ws, labels.data(), batch, n, k, what);
        EXPECT(bad == 0, "%s: %d slots differ", what, bad);
        printf("%s: %s\n", what, bad ? "FAILED" : "ok");
        fkm_cuda_update_destroy(ws);
        /* as parts of m rows */
        const int64_t ms[2] = {(n + 2) / 3, n - 100};
        for (int mi = 0; mi < 2 && n > 200; mi++) {
            const int64_t m = ms[mi], parts = fkm_ceil_div(n, m);
            fkm_dev_problem pp = pb;
            pp.n = m;
            pp.batch = (int32_t)(batch * parts);
            st = fkm_cuda_update_create(ctx, &pp, &ws);
            EXPECT(st == FKM_OK, "sort case (parts): create: %s", fkm_last_error(ctx));
            if (st != FKM_OK) break;
            EXPECT(fkm_cuda_update_scatter_stage(ws) == stage, "sort case (parts): scatter stage %lld, not %lld",
                   (long long)fkm_cuda_update_scatter_stage(ws), (long long)stage);
            st = fkm_cuda_update_parts(ctx, ws, &pp, n, dl, C, NULL, weight, NULL, NULL, 0, 0);
            EXPECT(st == FKM_OK, "sort case (parts): update: %s", fkm_last_error(ctx));
            CU(cudaDeviceSynchronize());
            char pwhat[200];
            snprintf(pwhat, sizeof pwhat, "%s as %lld parts of %lld rows", what, (long long)parts, (long long)m);
            const int pbad = check_sort(ws, labels.data(), (int)(batch * parts), m, k, pwhat, parts, n);
            EXPECT(pbad == 0, "%s: %d slots differ", pwhat, pbad);
            printf("%s: %s\n", pwhat, pbad ? "FAILED" : "ok");
            fkm_cuda_update_destroy(ws);
        }
    }
    unsetenv("FLASHKM_SCATTER_STAGE");
    cudaFree(X);
    cudaFree(C);
    cudaFree(dl);
    cudaFree(weight);
}

/* Bad usage returns a status (and a message), never crashes. */
static void run_bad_usage(fkm_ctx *ctx)
{
    int32_t *labels;
    float *C, *X;
    double *sums;
    CU(cudaMalloc((void **)&labels, 100 * 4));
    CU(cudaMemset(labels, 0, 100 * 4));
    CU(cudaMalloc((void **)&C, 4 * 8 * 4));
    CU(cudaMalloc((void **)&X, 100 * 8 * 4));
    CU(cudaMalloc((void **)&sums, 4 * 8 * 8));
    fkm_dev_problem pb;
    memset(&pb, 0, sizeof pb);
    pb.X = X;
    pb.dtype = FKM_F32;
    pb.n = 100;
    pb.d = 8;
    pb.ld = 8;
    pb.batch_stride = 800;
    pb.batch = 1;
    pb.k = 4;
    pb.metric = FKM_METRIC_L2;
    fkm_cuda_update_ws *ws = NULL;
    EXPECT(fkm_cuda_update_create(ctx, &pb, NULL) == FKM_E_NULL, "create(out = NULL)");
    EXPECT(fkm_cuda_update_create(ctx, NULL, &ws) == FKM_E_NULL && ws == NULL, "create(pb = NULL)");
    fkm_dev_problem bad = pb;
    bad.k = 0;
    EXPECT(fkm_cuda_update_create(ctx, &bad, &ws) == FKM_E_INVALID && ws == NULL, "create(k = 0)");
    EXPECT(fkm_cuda_update_create(ctx, &pb, &ws) == FKM_OK, "create: %s", fkm_last_error(ctx));
    if (ws) {
        EXPECT(fkm_cuda_update(ctx, ws, &pb, NULL, C, sums, NULL, NULL, NULL, 0, 0) == FKM_E_NULL, "labels NULL");
        EXPECT(fkm_last_error(ctx)[0] != '\0', "no message for labels NULL");
        EXPECT(fkm_cuda_update(ctx, NULL, &pb, labels, C, sums, NULL, NULL, NULL, 0, 0) == FKM_E_NULL, "ws NULL");
        EXPECT(fkm_cuda_update(ctx, ws, NULL, labels, C, sums, NULL, NULL, NULL, 0, 0) == FKM_E_NULL, "pb NULL");
        EXPECT(fkm_cuda_update(ctx, ws, &pb, labels, NULL, sums, NULL, NULL, NULL, 0, 0) == FKM_E_NULL,
               "centroids NULL");
        bad = pb;
        bad.k = 5;
        EXPECT(fkm_cuda_update(ctx, ws, &bad, labels, C, sums, NULL, NULL, NULL, 0, 0) == FKM_E_INVALID, "k mismatch");
        bad = pb;
        bad.n = 101;
        EXPECT(fkm_cuda_update(ctx, ws, &bad, labels, C, sums, NULL, NULL, NULL, 0, 0) == FKM_E_INVALID, "n too big");
        bad = pb;
        bad.ld = 7;
        EXPECT(fkm_cuda_update(ctx, ws, &bad, labels, C, sums, NULL, NULL, NULL, 0, 0) == FKM_E_INVALID, "ld < d");
        bad = pb;
        bad.dtype = (fkm_dtype)17;
        EXPECT(fkm_cuda_update(ctx, ws, &bad, labels, C, sums, NULL, NULL, NULL, 0, 0) == FKM_E_DTYPE, "bad dtype");
        bad = pb;
        bad.metric = (fkm_metric)9;
        EXPECT(fkm_cuda_update(ctx, ws, &bad, labels, C, sums, NULL, NULL, NULL, 0, 0) == FKM_E_INVALID, "bad metric");
        /* still usable after the refusals */
        EXPECT(fkm_cuda_update(ctx, ws, &pb, labels, C, sums, NULL, NULL, NULL, 0, 0) == FKM_OK, "valid call: %s",
               fkm_last_error(ctx));
        CU(cudaDeviceSynchronize());
    }
    fkm_cuda_update_destroy(ws);
    fkm_cuda_update_destroy(NULL);
    EXPECT(fkm_cuda_update_last_times(NULL).reduce == 0.0f, "last_times(NULL)");
    cudaFree(labels);
    cudaFree(C);
    cudaFree(X);
    cudaFree(sums);
}

int main(void)
{
    fkm_ctx *ctx = kernel_test_start();
    /* batch, n, k, d, ld_extra, dtype, metric, weights, labels, skew, empty_every, zero_rows */
    const test_case cases[] = {
        {1, 1000, 10, 3, 0, FKM_F32, FKM_METRIC_L2, 0, UNIFORM, 0.0, 0, 0},
        /* cluster 0 gets 3000+ points of each problem (split into items); clusters 2, 5 empty;
         * d = 130: two column tiles */
        {3, 5003, 7, 130, 3, FKM_F16, FKM_METRIC_L2, 1, SKEW, 0.62, 3, 0},
        {1, 4099, 1, 1, 0, FKM_BF16, FKM_METRIC_COSINE, 1, UNIFORM, 0.0, 0, 3},
        /* k = n, many empty clusters, d = 1024: eight column tiles */
        {3, 777, 777, 1024, 0, FKM_F32, FKM_METRIC_DOT, 0, UNIFORM, 0.0, 0, 0},
        /* f64 cosine with a norm pre-pass (d > 128) */
        {1, 3001, 13, 300, 1, FKM_F64, FKM_METRIC_COSINE, 0, SKEW, 0.4, 0, 2},
        /* k > 4096: the radix-sort path */
        {2, 10007, 5000, 17, 5, FKM_F16, FKM_METRIC_L2, 1, UNIFORM, 0.0, 0, 0},
        /* counting path with 2 warps per sort block, one tile */
        {1, 20000, 3000, 3, 0, FKM_BF16, FKM_METRIC_DOT, 1, UNIFORM, 0.0, 0, 0},
        {2, 9000, 40, 64, 0, FKM_F32, FKM_METRIC_COSINE, 1, UNIFORM, 0.0, 7, 50},
        /* one cluster of ~65,000 points: 128+ items combined */
        {1, 70000, 2, 5, 0, FKM_F16, FKM_METRIC_L2, 0, SKEW, 0.93, 0, 0},
        /* k at the counting-path limit, several tiles per problem */
        {3, 40000, 4096, 8, 0, FKM_F32, FKM_METRIC_L2, 1, UNIFORM, 0.0, 0, 0},
        /* the benchmark's shape, smaller: 7 sort tiles of 8192 points */
        {1, 50000, 1024, 128, 0, FKM_F16, FKM_METRIC_L2, 0, UNIFORM, 0.0, 0, 0},
        {2, 3333, 50, 40, 2, FKM_F64, FKM_METRIC_DOT, 1, SKEW, 0.5, 4, 0},
        /* many small clusters (about 2.5 points each, radix path): most clusters lie inside
         * one reduce unit and are written directly, the rest straddle a unit boundary;
         * 16-byte row loads (batch 1, ld = d = 128) */
        {1, 20000, 8000, 128, 0, FKM_F16, FKM_METRIC_L2, 1, UNIFORM, 0.0, 0, 0},
        /* the same with unaligned rows (element loads, same lanes and order) and two problems */
        {2, 9000, 5000, 64, 1, FKM_BF16, FKM_METRIC_DOT, 0, UNIFORM, 0.0, 0, 0},
        /* small k: every cluster spans many units (the combine's batched, warp-split sums) */
        {1, 120000, 16, 128, 0, FKM_F16, FKM_METRIC_L2, 0, UNIFORM, 0.0, 0, 0},
        /* cosine with several column tiles and vector loads, a partial last vector (d = 1000) */
        {1, 3000, 20, 1000, 0, FKM_F16, FKM_METRIC_COSINE, 1, SKEW, 0.3, 0, 3},
        /* f32, d = 128 (one row per warp step), weights */
        {1, 30000, 100, 128, 0, FKM_F32, FKM_METRIC_L2, 1, SKEW, 0.2, 9, 0},
        /* 16-byte aligned rows whose last vector is partial (the staged copy reads only the
         * row's bytes and zero-fills the rest): f16 d = 100, ld = 104; f32 cosine d = 130,
         * ld = 132 (two column tiles) */
        {1, 6000, 30, 100, 4, FKM_F16, FKM_METRIC_L2, 1, SKEW, 0.3, 5, 0},
        {1, 5000, 12, 130, 2, FKM_F32, FKM_METRIC_COSINE, 0, UNIFORM, 0.0, 0, 2},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    for (int ci = 0; ci < ncases; ci++) {
        const int before = failures;
        run_case(ctx, cases[ci], ci);
        printf("case %d (batch %d, n %lld, k %lld, d %lld, %s, metric %d, weights %d): %s\n", ci, cases[ci].batch,
               (long long)cases[ci].n, (long long)cases[ci].k, (long long)cases[ci].d,
               fkm_dtype_name(cases[ci].dtype), (int)cases[ci].metric, cases[ci].weights,
               failures == before ? "ok" : "FAILED");
    }
    /* the sort under every scatter: k from one label to the radix path, n not a multiple of
     * any tile (2048 .. 32768 points), with and without out-of-range labels */
    {
        const int small = getenv("FLASHKM_TEST_SMALL") != NULL;
        const int64_t ks[] = {1, 16, 300, 1000, 1024, 2048, 4096, 5000};
        for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
            run_sort_case(ctx, 1 + (int)(i % 3), small ? 40001 : 70001, ks[i], (int)(i % 2), 77 + i);
        run_sort_case(ctx, 2, 100, 1024, 1, 99);
        /* clumped labels (most tile counts zero, empty clusters), k not a multiple of 32 (the
         * scan's last column group partial) and at the counting-path limit */
        const int64_t kc[] = {1, 33, 1000, 4096};
        for (size_t i = 0; i < sizeof kc / sizeof kc[0]; i++)
            run_sort_case(ctx, 1 + (int)(i % 3), small ? 40001 : 70001, kc[i], 2, 555 + i);
    }
    run_bad_usage(ctx);
    fkm_destroy(ctx);
    if (failures) {
        printf("test_update: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_update: all passed\n");
    return 0;
}
