/* flashkm.c — the command-line tool: `flashkm fit`, `flashkm predict`, `flashkm info`.
 *
 * Exit status: 0 on success, 1 when the library or a file fails, 2 on a usage error.
 * Errors are one line on stderr ("flashkm: error: ..."); progress and summaries go to stderr
 * too, so stdout carries only what was asked for (help, version, info). */
#define _POSIX_C_SOURCE 200809L

#include "flashkm.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* ================================================================ names of enum values */

typedef struct choice {
    const char *name;
    int value;
} choice;

static const choice metric_names[] = {
    {"l2", FKM_METRIC_L2}, {"cosine", FKM_METRIC_COSINE}, {"dot", FKM_METRIC_DOT}, {NULL, 0}};
static const choice empty_names[] = {
    {"relocate", FKM_EMPTY_RELOCATE}, {"keep", FKM_EMPTY_KEEP}, {NULL, 0}};
static const choice precision_names[] = {
    {"fast", FKM_PRECISION_FAST}, {"f32", FKM_PRECISION_F32}, {"exact", FKM_PRECISION_EXACT}, {NULL, 0}};
static const choice backend_names[] = {
    {"auto", FKM_BACKEND_AUTO}, {"cpu", FKM_BACKEND_CPU}, {"cuda", FKM_BACKEND_CUDA}, {NULL, 0}};
/* --init takes one of the first two or a PATH; "file" only names FKM_INIT_USER in summaries */
static const choice init_names[] = {
    {"k-means++", FKM_INIT_KMEANS_PP}, {"random", FKM_INIT_RANDOM}, {NULL, 0}};
static const choice init_display_names[] = {
    {"k-means++", FKM_INIT_KMEANS_PP}, {"random", FKM_INIT_RANDOM}, {"file", FKM_INIT_USER},
    {NULL, 0}};

static const char *choice_name(const choice *table, int value)
{
    for (; table->name; table++)
        if (table->value == value) return table->name;
    return "?";
}

/* ================================================================ commands and options */

enum { CMD_FIT = 1, CMD_PREDICT = 2, CMD_INFO = 4 };

typedef enum opt_id {
    OPT_K, OPT_MAX_ITER, OPT_TOL, OPT_INIT, OPT_N_INIT, OPT_SEED, OPT_WEIGHTS, OPT_METRIC,
    OPT_EMPTY, OPT_BACKEND, OPT_PRECISION, OPT_THREADS, OPT_GPU_MEM, OPT_CENTROIDS, OPT_LABELS, OPT_QUIET,
    OPT_HELP, OPT_COUNT
} opt_id;

/* Every option of every command: its long name (NULL: short only), short letter (0: none),
 * whether it takes a value, and the commands that accept it. */
static const struct opt_spec {
    const char *name;
    char short_name;
    bool takes_value;
    unsigned cmds;
} opt_specs[OPT_COUNT] = {
    [OPT_K] = {NULL, 'k', true, CMD_FIT},
    [OPT_MAX_ITER] = {"max-iter", 0, true, CMD_FIT},
    [OPT_TOL] = {"tol", 0, true, CMD_FIT},
    [OPT_INIT] = {"init", 0, true, CMD_FIT},
    [OPT_N_INIT] = {"n-init", 0, true, CMD_FIT},
    [OPT_SEED] = {"seed", 0, true, CMD_FIT},
    [OPT_WEIGHTS] = {"weights", 0, true, CMD_FIT},
    [OPT_METRIC] = {"metric", 0, true, CMD_FIT | CMD_PREDICT},
    [OPT_EMPTY] = {"empty", 0, true, CMD_FIT},
    [OPT_BACKEND] = {"backend", 0, true, CMD_FIT | CMD_PREDICT},
    [OPT_PRECISION] = {"precision", 0, true, CMD_FIT},
    [OPT_THREADS] = {"threads", 0, true, CMD_FIT | CMD_PREDICT},
    [OPT_GPU_MEM] = {"gpu-mem", 0, true, CMD_FIT | CMD_PREDICT},
    [OPT_CENTROIDS] = {"centroids", 0, true, CMD_FIT | CMD_PREDICT},
    [OPT_LABELS] = {"labels", 0, true, CMD_FIT | CMD_PREDICT},
    [OPT_QUIET] = {"quiet", 'q', false, CMD_FIT | CMD_PREDICT},
    [OPT_HELP] = {"help", 'h', false, CMD_FIT | CMD_PREDICT | CMD_INFO},
};

/* The command line after parsing: the raw text of each option given (the last one wins; ""
 * for flags) and the positional INPUT. Values are converted and range-checked afterwards. */
typedef struct args {
    const struct command *cmd;
    const char *val[OPT_COUNT];
    const char *input;
} args;

typedef struct command {
    const char *name;
    unsigned id;
    const char *summary;
    void (*usage)(FILE *out);
    int (*run)(const args *a);
} command;

/* A usage error: one line on stderr with a pointer to the help, exit status 2. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int usage_error(const command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("flashkm: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'flashkm %s%s--help')\n", cmd ? cmd->name : "", cmd ? " " : "");
    return EXIT_USAGE;
}

/* Finds the option `arg` names ("--name", "--name=value", "-x", "-xVALUE") for cmd. On a
 * match *inline_val is the value written inside arg, or NULL. */
static int find_option(const command *cmd, const char *arg, const char **inline_val)
{
    *inline_val = NULL;
    for (int i = 0; i < OPT_COUNT; i++) {
        const struct opt_spec *o = &opt_specs[i];
        if (!(o->cmds & cmd->id)) continue;
        if (arg[1] == '-' && o->name) {
            size_t n = strlen(o->name);
            if (strncmp(arg + 2, o->name, n) == 0 && (arg[2 + n] == '\0' || arg[2 + n] == '=')) {
                if (arg[2 + n] == '=') *inline_val = arg + 3 + n;
                return i;
            }
        } else if (arg[1] != '-' && o->short_name && arg[1] == o->short_name) {
            if (arg[2] != '\0') *inline_val = arg + 2;
            return i;
        }
    }
    return -1;
}

static int parse_args(const command *cmd, int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = true;
        } else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
            const char *value;
            int id = find_option(cmd, arg, &value);
            if (id < 0)
                return usage_error(cmd, "unknown option '%s' for 'flashkm %s'", arg, cmd->name);
            const struct opt_spec *o = &opt_specs[id];
            if (!o->takes_value && value)
                return usage_error(cmd, "option '%s' takes no value", arg);
            if (o->takes_value && !value) {
                if (i + 1 >= argc) return usage_error(cmd, "option '%s' needs a value", arg);
                value = argv[++i];
            }
            if (o->takes_value && !*value)
                return usage_error(cmd, "option '%s' needs a non-empty value", arg);
            a->val[id] = o->takes_value ? value : "";
        } else if (!a->input) {
            a->input = arg;
        } else {
            return usage_error(cmd, "unexpected argument '%s' (INPUT is already '%s')", arg,
                               a->input);
        }
    }
    return 0;
}

/* ================================================================ option values */

/* Display name of an option for messages: "-k" or "--tol". */
static const char *opt_label(opt_id id, char *buf, size_t cap)
{
    if (opt_specs[id].name)
        snprintf(buf, cap, "--%s", opt_specs[id].name);
    else
        snprintf(buf, cap, "-%c", opt_specs[id].short_name);
    return buf;
}

static int bad_value(const args *a, opt_id id, const char *expected)
{
    char label[32];
    return usage_error(a->cmd, "invalid value '%s' for %s: expected %s", a->val[id],
                       opt_label(id, label, sizeof label), expected);
}

/* Integers: the whole string, in decimal, within [lo, hi]. */
static int get_int(const args *a, opt_id id, long long lo, long long hi, const char *expected,
                   long long *out)
{
    const char *s = a->val[id];
    if (!s) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || s[0] == ' ' || *end != '\0' || errno || v < lo || v > hi)
        return bad_value(a, id, expected);
    *out = v;
    return 0;
}

static int get_u64(const args *a, opt_id id, uint64_t *out)
{
    const char *s = a->val[id];
    if (!s) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno) /* strtoull would negate "-1" */
        return bad_value(a, id, "an unsigned 64-bit integer");
    *out = v;
    return 0;
}

/* A byte count: decimal digits with an optional suffix K, M, G or T (powers of 1024). */
static int get_bytes(const args *a, opt_id id, uint64_t *out)
{
    const char *s = a->val[id];
    if (!s) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = 0;
    if (*end && !end[1]) {
        const char *units = "KMGT", *u = strchr(units, toupper((unsigned char)*end));
        if (u) shift = 10 * (int)(u - units + 1), end++;
    }
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno || (shift && v > (UINT64_MAX >> shift)))
        return bad_value(a, id, "a byte count such as 2000000000, 512M or 40G");
    *out = (uint64_t)v << shift;
    return 0;
}

static int get_tol(const args *a, opt_id id, double *out)
{
    const char *s = a->val[id];
    if (!s) return 0;
    char *end;
    double v = strtod(s, &end);
    if (s[0] == '\0' || s[0] == ' ' || *end != '\0' || !isfinite(v) || v < 0)
        return bad_value(a, id, "a finite number >= 0");
    *out = v;
    return 0;
}

static int get_choice(const args *a, opt_id id, const choice *table, int *out)
{
    const char *s = a->val[id];
    if (!s) return 0;
    for (const choice *c = table; c->name; c++) {
        if (strcmp(c->name, s) == 0) {
            *out = c->value;
            return 0;
        }
    }
    char expected[64] = "";
    for (const choice *c = table; c->name; c++) {
        strcat(expected, c->name);
        if (c[1].name) strcat(expected, "|");
    }
    return bad_value(a, id, expected);
}

/* Everything fit and predict take, converted and range-checked. */
typedef struct config {
    fkm_params params;
    fkm_backend backend;
    int threads;
    const char *input, *init_path, *weights_path, *centroids_path, *labels_path;
    bool quiet;
} config;

static int get_config(const args *a, config *c)
{
    memset(c, 0, sizeof *c);
    c->params = fkm_params_default();
    c->input = a->input;
    c->centroids_path = a->val[OPT_CENTROIDS];
    c->labels_path = a->val[OPT_LABELS];
    c->weights_path = a->val[OPT_WEIGHTS];
    c->quiet = a->val[OPT_QUIET] != NULL;
    if (!c->input) return usage_error(a->cmd, "missing INPUT file");

    long long k = c->params.k, max_iter = c->params.max_iter, threads = 0;
    long long n_init = c->params.n_init;
    int metric = c->params.metric, empty = c->params.empty, backend = FKM_BACKEND_AUTO;
    int precision = c->params.precision;
    int rc;
    if ((rc = get_int(a, OPT_K, 1, INT64_MAX, "an integer >= 1", &k)) ||
        (rc = get_int(a, OPT_MAX_ITER, 1, INT32_MAX, "an integer >= 1", &max_iter)) ||
        (rc = get_int(a, OPT_N_INIT, 1, INT32_MAX, "an integer >= 1", &n_init)) ||
        (rc = get_int(a, OPT_THREADS, 0, INT32_MAX, "an integer >= 0", &threads)) ||
        (rc = get_tol(a, OPT_TOL, &c->params.tol)) ||
        (rc = get_u64(a, OPT_SEED, &c->params.seed)) ||
        (rc = get_bytes(a, OPT_GPU_MEM, &c->params.gpu_mem_bytes)) ||
        (rc = get_choice(a, OPT_METRIC, metric_names, &metric)) ||
        (rc = get_choice(a, OPT_EMPTY, empty_names, &empty)) ||
        (rc = get_choice(a, OPT_BACKEND, backend_names, &backend)) ||
        (rc = get_choice(a, OPT_PRECISION, precision_names, &precision)))
        return rc;
    c->params.precision = (fkm_precision)precision;
    c->params.k = k;
    c->params.max_iter = (int32_t)max_iter;
    c->params.n_init = (int32_t)n_init;
    c->params.n_threads = (int32_t)threads;
    c->params.metric = (fkm_metric)metric;
    c->params.empty = (fkm_empty)empty;
    c->threads = (int)threads;
    c->backend = (fkm_backend)backend;
    /* --init: a method's name, else the path of a centroids file */
    const char *init = a->val[OPT_INIT];
    if (init) {
        const choice *m = init_names;
        while (m->name && strcmp(m->name, init) != 0) m++;
        if (m->name) {
            c->params.init = (fkm_init)m->value;
        } else {
            c->init_path = init;
            c->params.init = FKM_INIT_USER;
        }
    }
    if (c->init_path && n_init > 1)
        return usage_error(a->cmd,
                           "--n-init %lld needs --init k-means++ or random: every run would "
                           "start from the centroids of '%s'", n_init, c->init_path);
    if (c->centroids_path && c->labels_path && strcmp(c->centroids_path, c->labels_path) == 0)
        return usage_error(a->cmd, "--centroids and --labels name the same file");
    return 0;
}

/* ================================================================ run-time helpers */

/* A library failure: the context's message (prefixed with what it concerns, when given). */
static int lib_error(fkm_ctx *ctx, fkm_status s, const char *about)
{
    const char *msg = fkm_last_error(ctx);
    if (!msg || !msg[0]) msg = fkm_status_string(s);
    fprintf(stderr, "flashkm: error: %s%s%s\n", about ? about : "", about ? ": " : "", msg);
    return EXIT_FAIL;
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("flashkm: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAIL;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int create_context(fkm_backend backend, int threads, uint64_t gpu_mem, fkm_ctx **ctx)
{
    fkm_status s = fkm_create(ctx, backend);
    if (s != FKM_OK)
        return fail("cannot use the %s backend: %s%s", choice_name(backend_names, (int)backend),
                    fkm_status_string(s),
                    s == FKM_E_UNSUPPORTED ? " (this build of flashkm does not include it)" : "");
    if (fkm_set_threads(*ctx, threads) != FKM_OK || fkm_set_gpu_mem(*ctx, gpu_mem) != FKM_OK)
        return fail("%s", fkm_last_error(*ctx));
    return 0;
}

/* calloc of n elements of size elem with the product checked. */
static void *alloc_array(int64_t n, size_t elem)
{
    if (n <= 0 || (uint64_t)n > SIZE_MAX / elem) return NULL;
    return calloc((size_t)n, elem);
}

/* IEEE half and bfloat16 to float, for centroid files stored in those types. */
static float half_to_float(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v = exp == 0 ? ldexpf((float)man, -24)
              : exp == 31 ? (man ? NAN : INFINITY)
                          : ldexpf((float)(man | 0x400), exp - 25);
    return (h & 0x8000) ? -v : v;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Element i of a loaded matrix as float. */
static float element_f32(const fkm_matrix *m, int64_t i)
{
    switch (m->dtype) {
    case FKM_F32: return ((const float *)m->data)[i];
    case FKM_F16: return half_to_float(((const uint16_t *)m->data)[i]);
    case FKM_BF16: return bf16_to_float(((const uint16_t *)m->data)[i]);
    case FKM_F64: return (float)((const double *)m->data)[i];
    }
    return NAN;
}

/* All elements of a loaded (not mapped: ld = cols) matrix as a new f32 array, NULL when out of
 * memory. */
static float *copy_f32(const fkm_matrix *m)
{
    float *out = alloc_array(m->rows * m->cols, sizeof(float));
    for (int64_t i = 0; out && i < m->rows * m->cols; i++) out[i] = element_f32(m, i);
    return out;
}

/* "K x D" for one problem, "(B, K, D)" for a batch: how messages show a matrix file's shape. */
static const char *shape_text(int64_t batch, int64_t rows, int64_t cols, char *buf, size_t cap)
{
    if (batch > 1)
        snprintf(buf, cap, "(%" PRId64 ", %" PRId64 ", %" PRId64 ")", batch, rows / batch, cols);
    else
        snprintf(buf, cap, "%" PRId64 " x %" PRId64, rows, cols);
    return buf;
}

/* Loads a centroid file (any readable format and float type) as f32. For data of `batch`
 * problems (> 1: a 3-D .npy) the file must be a 3-D (batch, K, D) .npy, else a 2-D K x D
 * file. want_k < 0 accepts any K; d must match the data. *k_out is K of one problem. */
static int load_centroids(fkm_ctx *ctx, const char *path, int64_t batch, int64_t want_k,
                          int64_t d, float **out, int64_t *k_out)
{
    fkm_matrix m;
    fkm_status s = fkm_matrix_load(ctx, path, &m);
    if (s != FKM_OK) return lib_error(ctx, s, NULL);
    int rc = 0;
    char got[96];
    shape_text(m.batch, m.rows, m.cols, got, sizeof got);
    if (batch > 1 &&
        (m.batch != batch || m.cols != d || (want_k >= 0 && m.rows != batch * want_k))) {
        if (want_k >= 0)
            rc = fail("%s: has shape %s, expected (B, K, D) = (%" PRId64 ", %" PRId64 ", %" PRId64
                      ") for the batched input", path, got, batch, want_k, d);
        else
            rc = fail("%s: has shape %s, expected (B, K, D) with B = %" PRId64 " and D = %" PRId64
                      " for the batched input", path, got, batch, d);
    } else if (batch <= 1 && m.batch > 1) {
        rc = fail("%s: has batched shape %s but the data is 2-D", path, got);
    } else if (batch <= 1 && want_k >= 0 && (m.rows != want_k || m.cols != d)) {
        rc = fail("%s: has %" PRId64 " x %" PRId64 " centroids, expected k x d = %" PRId64
                  " x %" PRId64, path, m.rows, m.cols, want_k, d);
    } else if (m.cols != d) {
        rc = fail("%s: centroids have d = %" PRId64 " columns but the data has %" PRId64, path,
                  m.cols, d);
    } else if (!(*out = copy_f32(&m))) {
        rc = fail("%s: out of memory", path);
    } else {
        *k_out = m.rows / (batch > 1 ? batch : 1);
    }
    fkm_matrix_free(&m);
    return rc;
}

/* Loads per-point weights (any readable format and float type) as f32: n values for one
 * problem, a 1-D (n,) .npy or an (n, 1) matrix (a one-column .csv, say); for `batch` > 1
 * problems a 2-D (batch, n) .npy, problem b's weights in row b (as fkm_fit_batch takes them).
 * The values themselves (negative, NaN, all zero) are checked by the fit. */
static int load_weights(fkm_ctx *ctx, const char *path, const char *input, int64_t batch,
                        int64_t n, float **out)
{
    fkm_matrix m;
    fkm_status s = fkm_matrix_load(ctx, path, &m);
    if (s != FKM_OK) return lib_error(ctx, s, NULL);
    int rc = 0;
    char got[96];
    if (m.batch == 1 && m.cols == 1) /* a 1-D (N,) or an N x 1 file */
        snprintf(got, sizeof got, "%" PRId64 " weights", m.rows);
    else
        shape_text(m.batch, m.rows, m.cols, got, sizeof got);
    if (batch > 1 && (m.batch != 1 || m.rows != batch || m.cols != n)) {
        rc = fail("%s: has %s%s, expected (B, N) = (%" PRId64 ", %" PRId64 ") weights for the "
                  "batched input %s", path, m.cols == 1 ? "" : "shape ", got, batch, n, input);
    } else if (batch <= 1 && m.batch == 1 && m.cols == 1 && m.rows != n) {
        rc = fail("%s: has %s, expected %" PRId64 " (one per row of %s)", path, got, n, input);
    } else if (batch <= 1 && (m.batch != 1 || m.cols != 1)) {
        rc = fail("%s: has shape %s, expected %" PRId64 " weights (a 1-D (%" PRId64 ",) or a %"
                  PRId64 " x 1 file, one per row of %s)", path, got, n, n, n, input);
    } else if (!(*out = copy_f32(&m))) {
        rc = fail("%s: out of memory", path);
    }
    fkm_matrix_free(&m);
    return rc;
}

/* Writes the requested outputs, centroids first: (k, d) and (n,) for one problem, (batch, k,
 * d) and (batch, n) for batch > 1. If the labels fail after the centroids were written, the
 * centroids are removed again so that a failed run leaves no outputs. */
static int write_outputs(fkm_ctx *ctx, int64_t batch, const char *centroids_path, const float *C,
                         int64_t k, int64_t d, const char *labels_path, const int32_t *labels,
                         int64_t n)
{
    fkm_status s;
    if (centroids_path &&
        (s = batch > 1 ? fkm_npy_save_batch(ctx, centroids_path, C, FKM_F32, batch, k, d)
                       : fkm_npy_save_matrix(ctx, centroids_path, C, FKM_F32, k, d)))
        return lib_error(ctx, s, NULL);
    if (labels_path &&
        (s = batch > 1 ? fkm_npy_save_labels_batch(ctx, labels_path, labels, batch, n)
                       : fkm_npy_save_labels(ctx, labels_path, labels, n))) {
        int rc = lib_error(ctx, s, NULL);
        if (centroids_path) unlink(centroids_path);
        return rc;
    }
    return 0;
}

/* ================================================================ fit */

/* Sums iteration times and counts iterations (over every run of --n-init) for the summary's
 * ms/iter; counts runs to head each one's progress lines when there are several. */
typedef struct progress_state {
    double x_bytes;     /* bytes of X one iteration reads (the assignment pass) */
    double iter_seconds;
    int64_t iters;
    int32_t run, n_init;
    uint64_t seed;
    int64_t exact_points, exact_rechecked; /* fkm_exact_stats right after the fit */
    int64_t exact_pair, exact_filter, exact_host; /* fkm_exact_stats_stages likewise */
} progress_state;

static int print_progress(const fkm_iter_info *it, void *user)
{
    progress_state *ps = user;
    ps->iter_seconds += it->seconds;
    ps->iters++;
    if (it->iter == 1 && ps->n_init > 1) { /* run r (from 0) is seeded with S + r */
        fprintf(stderr, "run %d/%d (seed %llu)\n", (int)ps->run + 1, (int)ps->n_init,
                (unsigned long long)(ps->seed + (uint64_t)ps->run));
        ps->run++;
    }
    fprintf(stderr,
            "iter %4d  inertia %.6e  rel-shift %.3e  changed %lld  empty %lld  %.1f ms "
            "(assign %.1f, update %.1f)  %.2f GB/s\n",
            (int)it->iter, it->inertia, it->rel_shift, (long long)it->n_changed,
            (long long)it->n_empty, 1e3 * it->seconds, 1e3 * it->assign_seconds,
            1e3 * it->update_seconds, it->assign_seconds > 0 ? ps->x_bytes / it->assign_seconds / 1e9 : 0.0);
    return 0;
}

/* "init=k-means++", with " n-init=R" for several runs: the summaries' view of the init. */
static const char *init_text(const config *c, char *buf, size_t cap)
{
    int len = snprintf(buf, cap, "init=%s", choice_name(init_display_names, (int)c->params.init));
    if (c->params.n_init > 1 && len > 0 && (size_t)len < cap)
        snprintf(buf + len, cap - (size_t)len, " n-init=%d", (int)c->params.n_init);
    return buf;
}

/* The result is the best run's: its iterations and inertia. With several runs "best of R
 * runs" says so, and ms/iter averages over the iterations of every run. */
static void print_fit_summary(const config *c, fkm_ctx *ctx, const fkm_matrix *X,
                              const fkm_result *r, double seconds, const progress_state *ps)
{
    int threads = c->threads > 0 ? c->threads : fkm_cpu_max_threads();
    char init[64], runs[64] = "";
    if (c->params.n_init > 1)
        snprintf(runs, sizeof runs, " (best of %d runs, %lld iterations in all)",
                 (int)c->params.n_init, (long long)ps->iters);
    fprintf(stderr,
            "flashkm: fit n=%lld d=%lld k=%lld dtype=%s metric=%s %s%s backend=%s threads=%d: "
            "%d iterations (%s), inertia %.6e%s, %.1f ms total, %.2f ms/iter\n",
            (long long)X->rows, (long long)X->cols, (long long)c->params.k,
            fkm_dtype_name(X->dtype), choice_name(metric_names, (int)c->params.metric),
            init_text(c, init, sizeof init), c->weights_path ? " weighted" : "",
            fkm_backend_name(fkm_ctx_backend(ctx)), threads, (int)r->n_iter,
            r->converged ? "converged" : "max-iter reached", r->inertia, runs, 1e3 * seconds,
            ps->iters > 0 ? 1e3 * ps->iter_seconds / (double)ps->iters : 0.0);
    if (c->params.precision == FKM_PRECISION_EXACT && ps->exact_points > 0) {
        fprintf(stderr, "flashkm: exact: %lld of %lld point assignments re-checked (%.4f%%)",
                (long long)ps->exact_rechecked, (long long)ps->exact_points,
                100.0 * (double)ps->exact_rechecked / (double)ps->exact_points);
        /* the device stages exist on the GPU only: on the CPU everything is "host" */
        if (ps->exact_pair + ps->exact_filter > 0)
            fprintf(stderr, ": %lld by the pair test, %lld by the device filter, %lld on the host",
                    (long long)ps->exact_pair, (long long)ps->exact_filter, (long long)ps->exact_host);
        fputc('\n', stderr);
    }
}

/* On the GPU, when the input did not fit the memory budget: how much of it stayed resident
 * and how the last pass over it split between copying and computing. */
static void print_placement(fkm_ctx *ctx)
{
    fkm_placement at;
    if (fkm_last_placement(ctx, &at) != FKM_OK || at.rows == 0 || at.resident_rows == at.rows) return;
    fprintf(stderr,
            "flashkm: X on the GPU: %.1f%% of the rows resident (budget %.2f GB, workspace %.2f GB), "
            "the rest streamed each pass in pieces of %lld rows (%s); last pass: copy %.1f ms, compute "
            "%.1f ms\n",
            100.0 * (double)at.resident_rows / (double)at.rows, at.budget_bytes / 1e9, at.workspace_bytes / 1e9,
            (long long)at.piece_rows, at.direct ? "straight from the input" : "through staging buffers",
            1e3 * at.copy_seconds, 1e3 * at.compute_seconds);
}

/* fkm_fit_batch calls no progress callback: one line per problem at the end instead. */
static void print_batch_summary(const config *c, fkm_ctx *ctx, const fkm_matrix *X, int64_t n,
                                const fkm_result *r, double seconds)
{
    int threads = c->threads > 0 ? c->threads : fkm_cpu_max_threads();
    char init[64];
    for (int64_t b = 0; b < X->batch; b++)
        fprintf(stderr, "problem %" PRId64 ": %d iterations (%s), inertia %.6e\n", b,
                (int)r[b].n_iter, r[b].converged ? "converged" : "max-iter reached",
                r[b].inertia);
    fprintf(stderr,
            "flashkm: fit batch=%lld n=%lld d=%lld k=%lld dtype=%s metric=%s %s%s backend=%s "
            "threads=%d: %lld problems, %.1f ms total\n",
            (long long)X->batch, (long long)n, (long long)X->cols, (long long)c->params.k,
            fkm_dtype_name(X->dtype), choice_name(metric_names, (int)c->params.metric),
            init_text(c, init, sizeof init), c->weights_path ? " weighted" : "",
            fkm_backend_name(fkm_ctx_backend(ctx)), threads, (long long)X->batch,
            1e3 * seconds);
}

static int run_fit(const args *a)
{
    config c;
    int rc = get_config(a, &c);
    if (rc) return rc;
    if (!a->val[OPT_K]) return usage_error(a->cmd, "missing -k K (the number of clusters)");

    fkm_ctx *ctx = NULL;
    fkm_matrix X = {0};
    float *init = NULL, *weights = NULL, *C = NULL;
    int32_t *labels = NULL;
    fkm_result *results = NULL;
    fkm_status s;
    int64_t k = c.params.k, init_k;
    if ((rc = create_context(c.backend, c.threads, c.params.gpu_mem_bytes, &ctx))) goto done;
    if ((s = fkm_matrix_map(ctx, c.input, &X)) != FKM_OK) {
        rc = lib_error(ctx, s, NULL);
        goto done;
    }
    /* a 3-D .npy (B, N, D) is B problems of N x D, packed */
    const int64_t batch = X.batch > 1 ? X.batch : 1, n = X.rows / batch;
    if (k > n) {
        rc = fail("%s: k = %" PRId64 " is larger than the number of points n = %" PRId64,
                  c.input, k, n);
        goto done;
    }
    if (c.init_path && (rc = load_centroids(ctx, c.init_path, batch, k, X.cols, &init, &init_k)))
        goto done;
    if (c.weights_path &&
        (rc = load_weights(ctx, c.weights_path, c.input, batch, n, &weights)))
        goto done;
    /* k <= n, so B * k * d fits like B * n * d */
    C = alloc_array(batch * k * X.cols, sizeof(float));
    labels = alloc_array(X.rows, sizeof(int32_t));
    results = alloc_array(batch, sizeof(fkm_result));
    if (!C || !labels || !results) {
        rc = fail("out of memory for %" PRId64 " x %" PRId64 " centroids and %" PRId64 " labels",
                  batch * k, X.cols, X.rows);
        goto done;
    }

    progress_state ps = {(double)X.rows * (double)X.cols * (double)fkm_dtype_size(X.dtype), 0, 0, 0,
                         c.params.n_init, c.params.seed, 0, 0, 0, 0, 0};
    c.params.init_centroids = init;
    if (!c.quiet && batch == 1) {
        c.params.progress = print_progress;
        c.params.progress_user = &ps;
    }
    double t0 = now_seconds();
    int64_t failed_problem = -1;
    if (batch > 1 && c.params.n_init > 1) {
        /* fkm_fit_batch runs each problem once: with several runs each problem goes through
         * fkm_fit on its own, problem b with seed S + b, which is the result fkm_fit_batch
         * promises for it (its fit alone with that seed) */
        fkm_params p = c.params;
        const size_t problem_bytes = (size_t)(n * X.ld) * fkm_dtype_size(X.dtype);
        s = FKM_OK;
        for (int64_t b = 0; b < batch && s == FKM_OK; b++) {
            p.seed = c.params.seed + (uint64_t)b;
            s = fkm_fit(ctx, &p, (const char *)X.data + (size_t)b * problem_bytes, X.dtype, n,
                        X.cols, X.ld, weights ? weights + b * n : NULL, C + b * k * X.cols,
                        labels + b * n, results + b);
            if (s != FKM_OK) failed_problem = b;
        }
    } else if (batch > 1) {
        s = fkm_fit_batch(ctx, &c.params, X.data, X.dtype, batch, n, X.cols, X.ld, n * X.ld,
                          weights, C, labels, results);
    } else {
        s = fkm_fit(ctx, &c.params, X.data, X.dtype, n, X.cols, X.ld, weights, C, labels,
                    results);
    }
    double seconds = now_seconds() - t0;
    if (s == FKM_OK) {
        fkm_exact_stats(ctx, &ps.exact_points, &ps.exact_rechecked);
        fkm_exact_stats_stages(ctx, &ps.exact_pair, &ps.exact_filter, &ps.exact_host);
    }
    if (s != FKM_OK) {
        /* a complaint about the weights ("weight[3] = -1 is negative") concerns their file */
        const char *msg = fkm_last_error(ctx);
        bool about_weights = c.weights_path && msg && strstr(msg, "weight");
        char about[600];
        snprintf(about, sizeof about, "%s", about_weights ? c.weights_path : c.input);
        if (failed_problem >= 0)
            snprintf(about + strlen(about), sizeof about - strlen(about),
                     ": problem %" PRId64, failed_problem);
        rc = lib_error(ctx, s, about);
        goto done;
    }
    if ((rc = write_outputs(ctx, batch, c.centroids_path, C, k, X.cols, c.labels_path, labels, n)))
        goto done;
    if (!c.quiet && batch > 1) print_batch_summary(&c, ctx, &X, n, results, seconds);
    if (!c.quiet && batch == 1) print_fit_summary(&c, ctx, &X, results, seconds, &ps);
    if (!c.quiet) print_placement(ctx);
done:
    free(init);
    free(weights);
    free(C);
    free(labels);
    free(results);
    fkm_matrix_free(&X);
    fkm_destroy(ctx);
    return rc;
}

/* ================================================================ predict */

static int run_predict(const args *a)
{
    config c;
    int rc = get_config(a, &c);
    if (rc) return rc;
    if (!c.centroids_path) return usage_error(a->cmd, "missing --centroids C.npy");

    fkm_ctx *ctx = NULL;
    fkm_matrix X = {0};
    float *C = NULL;
    int32_t *labels = NULL;
    int64_t k = 0;
    fkm_status s;
    if ((rc = create_context(c.backend, c.threads, c.params.gpu_mem_bytes, &ctx))) goto done;
    if ((s = fkm_matrix_map(ctx, c.input, &X)) != FKM_OK) {
        rc = lib_error(ctx, s, NULL);
        goto done;
    }
    /* a 3-D .npy (B, N, D) is B problems, each labelled with its own (B, K, D) centroids */
    const int64_t batch = X.batch > 1 ? X.batch : 1, n = X.rows / batch;
    if ((rc = load_centroids(ctx, c.centroids_path, batch, -1, X.cols, &C, &k))) goto done;
    if (!(labels = alloc_array(X.rows, sizeof(int32_t)))) {
        rc = fail("out of memory for %" PRId64 " labels", X.rows);
        goto done;
    }
    double inertia = 0.0, t0 = now_seconds();
    const size_t problem_bytes = (size_t)(n * X.ld) * fkm_dtype_size(X.dtype);
    for (int64_t b = 0; b < batch; b++) {
        double inertia_b = 0.0;
        s = fkm_predict(ctx, c.params.metric, (const char *)X.data + (size_t)b * problem_bytes,
                        X.dtype, n, X.cols, X.ld, C + b * k * X.cols, k, labels + b * n,
                        &inertia_b);
        if (s != FKM_OK) {
            char about[600];
            if (batch > 1)
                snprintf(about, sizeof about, "%s: problem %" PRId64, c.input, b);
            rc = lib_error(ctx, s, batch > 1 ? about : c.input);
            goto done;
        }
        inertia += inertia_b;
    }
    double seconds = now_seconds() - t0;
    if ((rc = write_outputs(ctx, batch, NULL, NULL, 0, 0, c.labels_path, labels, n))) goto done;
    if (!c.quiet && batch > 1)
        fprintf(stderr, "flashkm: predict batch=%lld n=%lld k=%lld: inertia %.6e (sum over "
                "problems), %.1f ms\n", (long long)batch, (long long)n, (long long)k, inertia,
                1e3 * seconds);
    if (!c.quiet && batch == 1)
        fprintf(stderr, "flashkm: predict n=%lld k=%lld: inertia %.6e, %.1f ms\n",
                (long long)X.rows, (long long)k, inertia, 1e3 * seconds);
done:
    free(C);
    free(labels);
    fkm_matrix_free(&X);
    fkm_destroy(ctx);
    return rc;
}

/* ================================================================ info */

static int run_info(const args *a)
{
    if (a->input) return usage_error(a->cmd, "unexpected argument '%s'", a->input);
    int cuda = fkm_cuda_device_count();
    printf("flashkm %s\n", fkm_version());
    printf("simd: %s\n", fkm_cpu_simd_level());
    printf("openmp threads: %d\n", fkm_cpu_max_threads());
    if (cuda > 0) {
        printf("cuda devices: %d\n", cuda);
        for (int i = 0; i < cuda; i++) {
            char name[256] = "?";
            int major = 0, minor = 0;
            uint64_t mem = 0;
            if (fkm_cuda_device_info(i, name, sizeof name, &major, &minor, &mem) == FKM_OK)
                printf("  %d: %s, compute capability %d.%d, %.1f GiB\n", i, name, major, minor,
                       (double)mem / (1024.0 * 1024.0 * 1024.0));
        }
    } else {
        printf("cuda devices: none\n");
    }
    return 0;
}

/* ================================================================ help */

static void usage_fit(FILE *out)
{
    fkm_params p = fkm_params_default();
    fprintf(out,
            "usage: flashkm fit -k K [options] INPUT\n"
            "\n"
            "Clusters the rows of INPUT into K clusters with exact Lloyd k-means.\n"
            "INPUT: .npy (f32, f16, f64, or bf16 saved as '<V2'), .fvecs, .fbin or .csv.\n"
            "A 3-D .npy of shape (B, N, D) is B independent problems of N x D, fitted in one\n"
            "batch (problem b's k-means++ or random init uses seed S + b; with --n-init R > 1\n"
            "the problems are fitted one after another, each as its fit alone with seed S + b);\n"
            "then --init must be (B, K, D), --weights (B, N), --centroids is written as\n"
            "(B, K, D), --labels as (B, N), and the progress lines are replaced by one summary\n"
            "line per problem.\n"
            "\n"
            "options:\n"
            "  -k K                    number of clusters, 1 <= K <= rows of INPUT (required)\n"
            "  --max-iter N            at most N iterations (default %d)\n"
            "  --tol T                 stop when the largest squared centroid shift is <= T times\n"
            "                          the mean per-feature variance (default %g)\n"
            "  --init k-means++|random|PATH\n"
            "                          k-means++: greedy k-means++ seeding with --seed (default);\n"
            "                          random: K distinct rows picked with --seed;\n"
            "                          PATH: a K x D file of initial centroids\n"
            "  --n-init R              run R fits, run r seeded with S + r, and keep the one of\n"
            "                          lowest inertia (default %d; must be 1 with --init PATH)\n"
            "  --seed S                seed of the k-means++ or random init (default %llu)\n"
            "  --weights W             a weight >= 0 per row of INPUT: a 1-D (N,) .npy or an\n"
            "                          N x 1 file, float32 or float64 (default: all ones)\n"
            "  --metric l2|cosine|dot  (default %s)\n"
            "  --empty keep|relocate   what to do with empty clusters (default %s)\n"
            "  --backend auto|cpu|cuda (default auto: cuda when a GPU is present)\n"
            "  --precision fast|f32|exact\n"
            "                          fast: tensor cores on the GPU for f16/bf16 input (near-ties\n"
            "                          may differ from an exact argmin); f32: f32 arithmetic on\n"
            "                          every backend; exact: labels certified equal to the exact\n"
            "                          argmin, ties to the lowest index (docs/EXACTNESS.md; on\n"
            "                          cuda: l2 and dot, f32/f16/bf16 input) (default fast)\n"
            "  --threads N             CPU threads; 0 = OpenMP's default (default 0)\n"
            "  --gpu-mem BYTES         GPU memory the fit may use (suffix K, M, G, T: powers of\n"
            "                          1024; default: the free memory). Rows of INPUT beyond it are\n"
            "                          streamed from host memory every iteration, same results\n"
            "  --centroids OUT.npy     write the K x D float32 centroids\n"
            "  --labels OUT.npy        write the labels (int32, shape (N,))\n"
            "  -q, --quiet             print nothing on success\n"
            "  -h, --help              show this help\n"
            "\n"
            "Progress (one line per iteration; with --n-init R > 1 each run's lines are headed\n"
            "'run r/R (seed S)') and a summary go to stderr. Outputs are written only after the\n"
            "fit succeeded; a failed run leaves none.\n",
            (int)p.max_iter, p.tol, (int)p.n_init, (unsigned long long)p.seed,
            choice_name(metric_names, (int)p.metric), choice_name(empty_names, (int)p.empty));
}

static void usage_predict(FILE *out)
{
    fputs("usage: flashkm predict --centroids C.npy [options] INPUT\n"
          "\n"
          "Labels each row of INPUT with its nearest centroid. For a 3-D .npy INPUT of shape\n"
          "(B, N, D) the centroids must be a (B, K, D) .npy: problem b is labelled with its own\n"
          "centroids, and the labels are written as (B, N).\n"
          "\n"
          "options:\n"
          "  --centroids C           the K x D centroids (required; any input format)\n"
          "  --metric l2|cosine|dot  (default l2)\n"
          "  --labels OUT.npy        write the labels (int32, shape (N,))\n"
          "  --backend auto|cpu|cuda (default auto)\n"
          "  --threads N             CPU threads; 0 = OpenMP's default (default 0)\n"
          "  --gpu-mem BYTES         GPU memory predict may use (as for fit)\n"
          "  -q, --quiet             print nothing on success\n"
          "  -h, --help              show this help\n",
          out);
}

static void usage_info(FILE *out)
{
    fputs("usage: flashkm info\n"
          "\n"
          "Prints the version, the CPU's SIMD level, OpenMP's default thread count and the\n"
          "number of CUDA devices.\n",
          out);
}

static const command commands[] = {
    {"fit", CMD_FIT, "cluster a data file with Lloyd k-means", usage_fit, run_fit},
    {"predict", CMD_PREDICT, "label a data file with given centroids", usage_predict, run_predict},
    {"info", CMD_INFO, "show version, SIMD level, threads and CUDA devices", usage_info, run_info},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage_main(FILE *out)
{
    fputs("usage: flashkm <command> [options]\n\ncommands:\n", out);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fputs("\nRun 'flashkm <command> --help' for the options of a command.\n"
          "  --version  print the version\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage_main(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("flashkm %s\n", fkm_version());
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        const command *cmd = &commands[i];
        if (strcmp(name, cmd->name) != 0) continue;
        args a;
        int rc = parse_args(cmd, argc - 2, argv + 2, &a);
        if (rc) return rc;
        if (a.val[OPT_HELP]) {
            cmd->usage(stdout);
            return 0;
        }
        return cmd->run(&a);
    }
    return usage_error(NULL, "unknown command '%s'", name);
}
