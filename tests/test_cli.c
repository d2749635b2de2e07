/* test_cli.c — the flashkm command-line tool, run as a user would run it (through the shell).
 *
 * Usage: test_cli PATH-TO-flashkm
 *
 * A small data set with a known answer is written in every input format by this file's own
 * writers: 4 well-separated blobs in D = 5 (N = 200, point i in blob i % 4, noise in [-1, 1]
 * around centres 20 apart), and init centroids made of points 0..3, so point j seeds blob j
 * and the labels must equal the blob index exactly. Each format must give those labels and
 * centroids close to the blob means: relative tolerance 1e-3 for f32, f64, fvecs, fbin and
 * csv (exact data), 1e-2 for f16 and bf16 (the data itself is rounded to 11 and 8 significant
 * bits). Init methods: the default (k-means++) finds the blobs; --n-init R returns the best
 * (lowest inertia) of the single fits with seeds S .. S + R - 1; --weights with integer
 * weights equals the fit of the data with each row repeated that often. Then error cases:
 * exit status, a one-line message, and no output file left behind.
 *
 * Exit status 0 when every check passes; otherwise each failed check is printed. */
#define _POSIX_C_SOURCE 200809L

#include "flashkm.h"
#include "scratch.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N = 200, D = 5, K = 4 };

static const char *flashkm_bin;

#define CHECK TS_CHECK

#define P ts_path

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole file as a NUL-terminated string (NULL if unreadable); *n gets its size. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        char *bigger = realloc(buf, 2 * cap + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    if (n) *n = len;
    return buf;
}

/* ---------------------------------------------------------------- running the tool */

/* Appends arg to cmd single-quoted for the shell ('it'\''s'). */
static void append_quoted(char *cmd, size_t cap, const char *arg)
{
    size_t len = strlen(cmd);
    if (len + 1 < cap) cmd[len++] = ' ';
    if (len + 1 < cap) cmd[len++] = '\'';
    for (const char *s = arg; *s && len + 5 < cap; s++) {
        if (*s == '\'') {
            memcpy(cmd + len, "'\\''", 4);
            len += 4;
        } else {
            cmd[len++] = *s;
        }
    }
    if (len + 1 < cap) cmd[len++] = '\'';
    cmd[len] = '\0';
}

/* Runs flashkm with the NULL-terminated arguments, stdout and stderr to out.txt and err.txt
 * in the temp dir; returns the exit status (-1 if it did not exit normally). */
static int run(const char *arg, ...)
{
    char cmd[8192] = "";
    append_quoted(cmd, sizeof cmd, flashkm_bin);
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a; a = va_arg(ap, const char *)) append_quoted(cmd, sizeof cmd, a);
    va_end(ap);
    strcat(cmd, " >");
    append_quoted(cmd, sizeof cmd, P("out.txt"));
    strcat(cmd, " 2>");
    append_quoted(cmd, sizeof cmd, P("err.txt"));
    int st = system(cmd);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

static char *last_stderr(void)
{
    char *s = slurp(P("err.txt"), NULL);
    return s ? s : calloc(1, 1);
}

/* The last run's stderr must be exactly one non-empty "flashkm: error: ..." line. */
static void expect_one_error_line(const char *what, const char *word)
{
    char *err = last_stderr();
    size_t len = err ? strlen(err) : 0;
    char *nl = err ? strchr(err, '\n') : NULL;
    CHECK(err && strncmp(err, "flashkm: error: ", 16) == 0 && len > 17 && nl == err + len - 1,
          "%s: stderr is not one error line: '%s'", what, err ? err : "");
    if (word) CHECK(err && strstr(err, word), "%s: message lacks '%s': %s", what, word, err);
    free(err);
}

/* ---------------------------------------------------------------- the data set */

static float X[N][D];
static int blob_of[N];
static double blob_mean[K][D];

static uint64_t lcg_state = 12345;

static double uniform_pm1(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* Blob j is centred at 20 * e_j (blob 0 at 2 * e_4, so no centre is the origin), and every
 * point is within sqrt(5) of its centre: nearest-centre assignment has no ties and no doubt. */
static void make_data(void)
{
    for (int i = 0; i < N; i++) {
        int b = i % K;
        blob_of[i] = b;
        for (int t = 0; t < D; t++) {
            double centre = (b > 0 && t == b - 1) ? 20.0 : (b == 0 && t == D - 1) ? 2.0 : 0.0;
            X[i][t] = (float)(centre + uniform_pm1());
        }
    }
    double count[K] = {0};
    for (int i = 0; i < N; i++) {
        count[blob_of[i]] += 1;
        for (int t = 0; t < D; t++) blob_mean[blob_of[i]][t] += X[i][t];
    }
    for (int j = 0; j < K; j++)
        for (int t = 0; t < D; t++) blob_mean[j][t] /= count[j];
}

/* ---------------------------------------------------------------- writers of each format */

static FILE *create(const char *name)
{
    FILE *f = fopen(P(name), "wb");
    if (!f) {
        fprintf(stderr, "test_cli: cannot create %s\n", P(name));
        exit(2);
    }
    return f;
}

static void finish(FILE *f)
{
    if (ferror(f) || fclose(f) != 0) {
        fprintf(stderr, "test_cli: write error\n");
        exit(2);
    }
}

/* A version 1.0 .npy header for the shape written as a tuple ("(3, 200, 5)") padded to 64
 * bytes. */
static void npy_header_shape(FILE *f, const char *descr, const char *shape)
{
    char dict[160];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    int hlen = ((10 + n + 1 + 63) / 64) * 64 - 10;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fprintf(f, "%s%*s\n", dict, hlen - n - 1, "");
}

static void npy_header(FILE *f, const char *descr, int rows, int cols)
{
    char shape[64];
    snprintf(shape, sizeof shape, "(%d, %d)", rows, cols);
    npy_header_shape(f, descr, shape);
}

static uint16_t to_half(float x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs((double)x);
    if (a < 0x1p-14) return (uint16_t)(sign | (uint16_t)nearbyint(a * 0x1p24)); /* subnormal */
    int e;
    frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    double m = nearbyint(a * ldexp(1.0, 11 - e)); /* 11 significant bits, ties to even */
    if (m == 2048.0) {
        m = 1024.0;
        e++;
    }
    return (uint16_t)(sign | ((e + 14) << 10) | ((uint16_t)m - 1024));
}

static uint16_t to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even (values are finite) */
    return (uint16_t)(u >> 16);
}

/* One element of X in the file's type. */
typedef void (*put_fn)(FILE *f, float x);
static void put_f32(FILE *f, float x) { fwrite(&x, 4, 1, f); }
static void put_f64(FILE *f, float x) { double v = x; fwrite(&v, 8, 1, f); }
static void put_f16(FILE *f, float x) { uint16_t h = to_half(x); fwrite(&h, 2, 1, f); }
static void put_bf16(FILE *f, float x) { uint16_t h = to_bf16(x); fwrite(&h, 2, 1, f); }

static void put_i32(FILE *f, int32_t v) { fwrite(&v, 4, 1, f); }

static void write_npy(const char *name, const char *descr, put_fn put, int rows)
{
    FILE *f = create(name);
    npy_header(f, descr, rows, D);
    for (int i = 0; i < rows; i++)
        for (int t = 0; t < D; t++) put(f, X[i][t]);
    finish(f);
}

static void write_fvecs(const char *name)
{
    FILE *f = create(name);
    for (int i = 0; i < N; i++) {
        put_i32(f, D);
        for (int t = 0; t < D; t++) put_f32(f, X[i][t]);
    }
    finish(f);
}

static void write_fbin(const char *name)
{
    FILE *f = create(name);
    put_i32(f, N);
    put_i32(f, D);
    for (int i = 0; i < N; i++)
        for (int t = 0; t < D; t++) put_f32(f, X[i][t]);
    finish(f);
}

/* %.9g round-trips a float exactly. nan_at >= 0 puts "nan" into that row. */
static void write_csv(const char *name, bool header, bool crlf, int nan_at)
{
    FILE *f = create(name);
    const char *eol = crlf ? "\r\n" : "\n";
    if (header) fprintf(f, "f0,f1,f2,f3,f4%s", eol);
    for (int i = 0; i < N; i++) {
        for (int t = 0; t < D; t++) {
            if (i == nan_at && t == 2)
                fprintf(f, "%snan", t ? ", " : "");
            else
                fprintf(f, "%s%.9g", t ? ", " : "", (double)X[i][t]);
        }
        fputs(eol, f);
    }
    finish(f);
}

/* ---------------------------------------------------------------- reading the outputs */

/* Reads an int32 .npy with its own parser: '<i4', the shape written as `shape`, and `count`
 * int32 values. */
static bool read_int32_npy(const char *name, const char *shape, size_t count, int32_t *labels)
{
    size_t n = 0;
    char *b = slurp(P(name), &n);
    if (!CHECK(b != NULL, "%s: not written", name)) return false;
    bool ok = CHECK(n >= 10 && memcmp(b, "\x93NUMPY\x01", 7) == 0, "%s: not a .npy v1", name);
    if (ok) {
        size_t hlen = (size_t)(unsigned char)b[8] | ((size_t)(unsigned char)b[9] << 8);
        char expect_shape[64];
        snprintf(expect_shape, sizeof expect_shape, "'shape': %s", shape);
        char *header = strndup(b + 10, hlen);
        const char *shown = header ? header : "(none)";
        ok = CHECK(header && strstr(header, "'descr': '<i4'"), "%s: not int32: %s", name, shown) &&
             CHECK(header && strstr(header, expect_shape), "%s: shape is not %s: %s", name, shape, shown) &&
             CHECK(n == 10 + hlen + 4 * count, "%s: size %zu", name, n);
        free(header);
        if (ok) memcpy(labels, b + 10 + hlen, 4 * count);
    }
    free(b);
    return ok;
}

/* Reads a labels .npy: '<i4', shape (N,), N int32. */
static bool read_labels(const char *name, int32_t *labels)
{
    char shape[32];
    snprintf(shape, sizeof shape, "(%d,)", N);
    return read_int32_npy(name, shape, N, labels);
}

/* Reads centroids with the library's reader (tested on its own by test_io). */
static bool read_centroids(const char *name, float *C)
{
    fkm_matrix m;
    fkm_status s = fkm_matrix_load(NULL, P(name), &m);
    bool ok = CHECK(s == FKM_OK, "%s: cannot load: %s", name, fkm_status_string(s)) &&
              CHECK(m.dtype == FKM_F32 && m.rows == K && m.cols == D, "%s: not %dx%d f32", name,
                    K, D);
    if (ok) memcpy(C, m.data, sizeof(float) * K * D);
    fkm_matrix_free(&m);
    return ok;
}

/* ---------------------------------------------------------------- tests */

typedef struct format_case {
    const char *file;
    double tol; /* relative tolerance of the centroids against the blob means */
} format_case;

static int32_t reference_labels[N];

static void check_fit_outputs(const format_case *fc, const char *L, const char *C)
{
    int32_t labels[N];
    float cent[K * D];
    if (read_labels(L, labels)) {
        int wrong = 0;
        for (int i = 0; i < N; i++) wrong += labels[i] != blob_of[i];
        CHECK(wrong == 0, "%s: %d labels differ from the blob membership", fc->file, wrong);
        CHECK(memcmp(labels, reference_labels, sizeof labels) == 0,
              "%s: labels differ from the first format's", fc->file);
    }
    if (read_centroids(C, cent)) {
        double worst = 0;
        for (int j = 0; j < K; j++)
            for (int t = 0; t < D; t++) {
                double err = fabs(cent[j * D + t] - blob_mean[j][t]) / (1.0 + fabs(blob_mean[j][t]));
                if (err > worst) worst = err;
            }
        CHECK(worst <= fc->tol, "%s: centroids off the blob means by %.3g (tolerance %.0e)",
              fc->file, worst, fc->tol);
    }
}

static void test_formats(void)
{
    static const format_case cases[] = {
        {"x_f32.npy", 1e-3}, {"x_f64.npy", 1e-3},  {"x_f16.npy", 1e-2},  {"x_bf16.npy", 1e-2},
        {"x.fvecs", 1e-3},   {"x.fbin", 1e-3},     {"x_hdr.csv", 1e-3},  {"x_nohdr.csv", 1e-3},
        {"x_crlf.CSV", 1e-3},
    };
    write_npy("x_f32.npy", "<f4", put_f32, N);
    write_npy("x_f64.npy", "<f8", put_f64, N);
    write_npy("x_f16.npy", "<f2", put_f16, N);
    write_npy("x_bf16.npy", "<V2", put_bf16, N);
    write_fvecs("x.fvecs");
    write_fbin("x.fbin");
    write_csv("x_hdr.csv", true, false, -1);
    write_csv("x_nohdr.csv", false, false, -1);
    write_csv("x_crlf.CSV", true, true, -1);
    write_npy("init.npy", "<f4", put_f32, K); /* points 0..3: one from each blob, in order */
    memcpy(reference_labels, blob_of, sizeof reference_labels);

    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const format_case *fc = &cases[c];
        char L[64], C[64];
        snprintf(L, sizeof L, "L_%zu.npy", c);
        snprintf(C, sizeof C, "C_%zu.npy", c);
        int rc = run("fit", "-k", "4", "--init", P("init.npy"), "--labels", P(L), "--centroids",
                     P(C), "--quiet", P(fc->file), NULL);
        char *err = last_stderr();
        if (CHECK(rc == 0, "fit %s: exit status %d: %s", fc->file, rc, err)) {
            CHECK(err[0] == '\0', "fit %s --quiet printed: %s", fc->file, err);
            check_fit_outputs(fc, L, C);
        }
        free(err);
    }

    /* predict with the centroids of the f32 fit gives the same labels */
    int32_t labels[N];
    int rc = run("predict", "--centroids", P("C_0.npy"), "--labels", P("P.npy"), "--quiet",
                 P("x_f32.npy"), NULL);
    char *err = last_stderr();
    if (CHECK(rc == 0, "predict: exit status %d: %s", rc, err) && read_labels("P.npy", labels))
        CHECK(memcmp(labels, blob_of, sizeof labels) == 0, "predict: labels differ");
    free(err);
}

/* Without --quiet: one "iter" line per iteration, and a summary whose count matches. */
static void test_progress(void)
{
    char init_opt[600];
    snprintf(init_opt, sizeof init_opt, "--init=%s", P("init.npy"));
    /* also the -kK and --opt=value spellings */
    int rc = run("fit", "-k4", init_opt, "--max-iter=50", "--tol", "0", "--threads=1",
             P("x_f32.npy"), NULL);
    char *err = last_stderr();
    if (!CHECK(rc == 0, "fit with progress: exit status %d: %s", rc, err)) {
        free(err);
        return;
    }
    int iter_lines = 0, n_iter = -1, summaries = 0;
    for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "iter ", 5) == 0) iter_lines++;
        char *p = strstr(line, "threads=");
        if (strncmp(line, "flashkm: fit n=200 d=5 k=4 dtype=f32 metric=l2", 46) == 0 && p) {
            summaries++;
            CHECK(sscanf(p, "threads=%*d: %d iterations", &n_iter) == 1, "summary: %s", line);
            CHECK(strstr(line, "converged") != NULL, "did not converge: %s", line);
        }
    }
    CHECK(summaries == 1, "expected one summary line on stderr, got %d", summaries);
    CHECK(n_iter >= 1 && iter_lines == n_iter, "%d iter lines but the summary says %d",
          iter_lines, n_iter);
    free(err);
    char *out = slurp(P("out.txt"), NULL);
    CHECK(out && out[0] == '\0', "fit printed on stdout: %s", out ? out : "");
    free(out);
}

/* ---------------------------------------------------------------- batched (B, N, D) input */

enum { B = 3 };

/* Problem b of the batch: X with its rows rotated by 7 * b and shifted by 3 * b, so every
 * problem has other data and other labels. */
static float XB[B][N][D];

static void make_batch_data(void)
{
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++)
            for (int t = 0; t < D; t++) XB[b][i][t] = X[(i + 7 * b) % N][t] + 3.0f * (float)b;
}

/* f32 .npy of `rows` rows of problem b ((rows, D)), or of all problems ((B, rows, D), b < 0). */
static void write_problem_npy(const char *name, int b, int rows)
{
    FILE *f = create(name);
    char shape[64];
    if (b < 0)
        snprintf(shape, sizeof shape, "(%d, %d, %d)", B, rows, D);
    else
        snprintf(shape, sizeof shape, "(%d, %d)", rows, D);
    npy_header_shape(f, "<f4", shape);
    for (int p = b < 0 ? 0 : b; p < (b < 0 ? B : b + 1); p++)
        for (int i = 0; i < rows; i++)
            for (int t = 0; t < D; t++) put_f32(f, XB[p][i][t]);
    finish(f);
}

/* Loads a centroids file that must be f32 of `batch` problems of K x D. */
static bool read_centroids_batch(const char *name, int batch, float *C)
{
    fkm_matrix m;
    fkm_status s = fkm_matrix_load(NULL, P(name), &m);
    bool ok = CHECK(s == FKM_OK, "%s: cannot load: %s", name, fkm_status_string(s)) &&
              CHECK(m.dtype == FKM_F32 && m.batch == batch && m.rows == (int64_t)batch * K &&
                        m.cols == D,
                    "%s: not (%d, %d, %d) f32 (batch %lld, rows %lld)", name, batch, K, D,
                    (long long)m.batch, (long long)m.rows);
    if (ok) memcpy(C, m.data, sizeof(float) * (size_t)batch * K * D);
    fkm_matrix_free(&m);
    return ok;
}

/* A batched fit (extra: --init FILE or --seed S) against B 2-D fits of the problems alone
 * (with problem b's init file or seed S + b): centroids and labels must be bitwise equal. */
static void compare_batch_with_single(const char *what, const char *init3, uint64_t seed)
{
    static float CB[B * K * D], C1[K * D];
    static int32_t LB[B * N], L1[N];
    char seed_text[32];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    int rc = init3 ? run("fit", "-k", "4", "--init", P(init3), "--centroids", P("CB.npy"),
                         "--labels", P("LB.npy"), "--quiet", P("xb.npy"), NULL)
                   : run("fit", "-k", "4", "--seed", seed_text, "--centroids", P("CB.npy"),
                         "--labels", P("LB.npy"), "--quiet", P("xb.npy"), NULL);
    char *err = last_stderr();
    bool ok = CHECK(rc == 0, "%s: batched fit: exit status %d: %s", what, rc, err);
    free(err);
    if (!ok) return;
    char shape[32];
    snprintf(shape, sizeof shape, "(%d, %d)", B, N);
    if (!read_centroids_batch("CB.npy", B, CB) || !read_int32_npy("LB.npy", shape, B * N, LB))
        return;
    for (int b = 0; b < B; b++) {
        char xname[32], iname[32];
        snprintf(xname, sizeof xname, "xb_%d.npy", b);
        snprintf(iname, sizeof iname, "ib_%d.npy", b);
        snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)(seed + (uint64_t)b));
        rc = init3 ? run("fit", "-k", "4", "--init", P(iname), "--centroids", P("C1.npy"),
                         "--labels", P("L1.npy"), "--quiet", P(xname), NULL)
                   : run("fit", "-k", "4", "--seed", seed_text, "--centroids", P("C1.npy"),
                         "--labels", P("L1.npy"), "--quiet", P(xname), NULL);
        if (!CHECK(rc == 0, "%s: fit of problem %d alone: exit status %d", what, b, rc)) continue;
        if (!read_centroids("C1.npy", C1) || !read_labels("L1.npy", L1)) continue;
        CHECK(memcmp(C1, CB + b * K * D, sizeof C1) == 0,
              "%s: problem %d: batched centroids differ from its fit alone", what, b);
        CHECK(memcmp(L1, LB + b * N, sizeof L1) == 0,
              "%s: problem %d: batched labels differ from its fit alone", what, b);
        if (init3) {
            /* init row j of problem b is its row j, of blob (j + 7b) % 4, and row i is of blob
             * (i + 7b) % 4: so the blob labels are i % 4 in every problem */
            int wrong = 0;
            for (int i = 0; i < N; i++) wrong += LB[b * N + i] != i % K;
            CHECK(wrong == 0, "%s: problem %d: %d labels differ from the blob membership", what,
                  b, wrong);
        }
    }
}

static void test_batch(void)
{
    make_batch_data();
    write_problem_npy("xb.npy", -1, N);
    write_problem_npy("ib.npy", -1, K); /* problem b's first K rows: its own init */
    for (int b = 0; b < B; b++) {
        char xname[32], iname[32];
        snprintf(xname, sizeof xname, "xb_%d.npy", b);
        snprintf(iname, sizeof iname, "ib_%d.npy", b);
        write_problem_npy(xname, b, N);
        write_problem_npy(iname, b, K);
    }
    compare_batch_with_single("--init (B, K, D)", "ib.npy", 0);
    compare_batch_with_single("--seed 11", NULL, 11);

    /* predict per problem with the batched centroids gives the batched fit's labels */
    static int32_t LB[B * N], LP[B * N];
    char shape[32];
    snprintf(shape, sizeof shape, "(%d, %d)", B, N);
    int rc = run("fit", "-k", "4", "--init", P("ib.npy"), "--centroids", P("CB.npy"), "--labels",
                 P("LB.npy"), "--quiet", P("xb.npy"), NULL);
    CHECK(rc == 0, "batched fit: exit status %d", rc);
    rc = run("predict", "--centroids", P("CB.npy"), "--labels", P("LP.npy"), "--quiet",
             P("xb.npy"), NULL);
    char *err = last_stderr();
    if (CHECK(rc == 0, "batched predict: exit status %d: %s", rc, err) &&
        read_int32_npy("LB.npy", shape, B * N, LB) && read_int32_npy("LP.npy", shape, B * N, LP))
        CHECK(memcmp(LB, LP, sizeof LB) == 0, "batched predict: labels differ from the fit's");
    free(err);

    /* without --quiet: one summary line per problem, and nothing on stdout */
    rc = run("fit", "-k", "4", "--init", P("ib.npy"), P("xb.npy"), NULL);
    err = last_stderr();
    if (CHECK(rc == 0, "batched fit with summary: exit status %d: %s", rc, err)) {
        int problems = 0, iter_lines = 0, totals = 0;
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n")) {
            int b = -1, it = -1;
            if (sscanf(line, "problem %d: %d iterations", &b, &it) == 2) {
                CHECK(b == problems && it >= 1, "bad problem line: %s", line);
                problems++;
            }
            if (strncmp(line, "iter ", 5) == 0) iter_lines++;
            if (strncmp(line, "flashkm: fit batch=3 n=200 d=5 k=4", 34) == 0) totals++;
        }
        CHECK(problems == B, "expected %d problem lines, got %d", B, problems);
        CHECK(iter_lines == 0, "batched fit printed %d per-iteration lines", iter_lines);
        CHECK(totals == 1, "expected one batch summary line, got %d", totals);
    }
    free(err);
    char *out = slurp(P("out.txt"), NULL);
    CHECK(out && out[0] == '\0', "batched fit printed on stdout: %s", out ? out : "");
    free(out);

    /* --init must be (B, K, D): a K x D file, a (B, K - 1, D) file, a (B - 1, K, D) file */
    remove(P("L_berr.npy"));
    rc = run("fit", "-k", "4", "--init", P("init.npy"), "--labels", P("L_berr.npy"), P("xb.npy"),
             NULL);
    CHECK(rc == 1, "batched fit with a 2-D init: exit status %d, expected 1", rc);
    expect_one_error_line("batched fit with a 2-D init", "(B, K, D)");
    rc = run("fit", "-k", "3", "--init", P("ib.npy"), "--labels", P("L_berr.npy"), P("xb.npy"),
             NULL);
    CHECK(rc == 1, "batched fit with K mismatch: exit status %d, expected 1", rc);
    expect_one_error_line("batched fit with K mismatch", "ib.npy");
    CHECK(!file_exists(P("L_berr.npy")), "batched init errors: an output was created");
    /* a 2-D fit with a batched init, and predict with mismatched batching */
    rc = run("fit", "-k", "4", "--init", P("ib.npy"), P("x_f32.npy"), NULL);
    CHECK(rc == 1, "2-D fit with a batched init: exit status %d, expected 1", rc);
    expect_one_error_line("2-D fit with a batched init", "ib.npy");
    rc = run("predict", "--centroids", P("C_0.npy"), P("xb.npy"), NULL);
    CHECK(rc == 1, "batched predict with 2-D centroids: exit status %d, expected 1", rc);
    expect_one_error_line("batched predict with 2-D centroids", "C_0.npy");
    /* k larger than one problem's N (but not than B * N) */
    rc = run("fit", "-k", "201", P("xb.npy"), NULL);
    CHECK(rc == 1, "batched fit with k > N: exit status %d, expected 1", rc);
    expect_one_error_line("batched fit with k > N", "n = 200");
}

/* ---------------------------------------------------------------- init methods, --n-init, --weights */

/* The inertia on the summary line of the last run's stderr ("..., inertia 1.234567e+02"), or
 * NaN when there is none. */
static double summary_inertia(void)
{
    char *err = last_stderr();
    double v = NAN;
    for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n")) {
        char *p = strstr(line, ", inertia ");
        if (strncmp(line, "flashkm: fit ", 13) == 0 && p) sscanf(p + 10, "%lf", &v);
    }
    free(err);
    return v;
}

/* Whether the last run's stderr has a line starting with `prefix` that contains `word`. */
static bool stderr_has(const char *prefix, const char *word)
{
    char *err = last_stderr();
    bool found = false;
    for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, prefix, strlen(prefix)) == 0 && (!word || strstr(line, word)))
            found = true;
    free(err);
    return found;
}

static int count_stderr_lines(const char *prefix)
{
    char *err = last_stderr();
    int n = 0;
    for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
        n += strncmp(line, prefix, strlen(prefix)) == 0;
    free(err);
    return n;
}

/* --precision exact: the blob labels and centroids as in fast mode, and a summary line with
 * the re-checked count (on the CPU, where every metric and dtype is certified). */
static void test_precision_exact(void)
{
    int rc = run("fit", "-k", "4", "--init", P("init.npy"), "--labels", P("LE.npy"), "--centroids", P("CE.npy"),
                 "--precision", "exact", "--backend", "cpu", P("x_f16.npy"), NULL);
    char *err = last_stderr();
    static const format_case fc = {"x_f16.npy (exact)", 1e-2};
    if (CHECK(rc == 0, "fit --precision exact: exit status %d: %s", rc, err)) {
        check_fit_outputs(&fc, "LE.npy", "CE.npy");
        CHECK(stderr_has("flashkm: exact:", "re-checked"), "fit --precision exact: no re-check summary: %s", err);
    }
    free(err);
}

/* A .npy of `count` weights: descr '<f4' or '<f8', shape written as `shape` ("(200,)"). */
static void write_weights(const char *name, const char *descr, const char *shape,
                          const double *w, int count)
{
    FILE *f = create(name);
    npy_header_shape(f, descr, shape);
    put_fn put = strcmp(descr, "<f8") == 0 ? put_f64 : put_f32;
    for (int i = 0; i < count; i++) put(f, (float)w[i]);
    finish(f);
}

/* Default init (k-means++), --init k-means++ and --init random: each fits the 4 blobs, and
 * the summary names the method. */
static void test_init_methods(void)
{
    static int32_t L_default[N], L_pp[N];
    static float C_default[K * D], C_pp[K * D];
    int rc = run("fit", "-k", "4", "--centroids", P("C_def.npy"), "--labels", P("L_def.npy"),
                 P("x_f32.npy"), NULL);
    char *err = last_stderr();
    bool ok = CHECK(rc == 0, "default fit: exit status %d: %s", rc, err);
    free(err);
    if (ok) {
        CHECK(stderr_has("flashkm: fit n=200", "init=k-means++"),
              "default fit: the summary does not say init=k-means++");
        CHECK(!stderr_has("flashkm: fit n=200", "n-init"),
              "default fit: the summary mentions n-init for a single run");
        CHECK(count_stderr_lines("run ") == 0, "default fit: printed run headers");
    }
    if (ok && read_labels("L_def.npy", L_default) && read_centroids("C_def.npy", C_default)) {
        /* well-separated blobs: k-means++ seeds one centre in each, so the labels are the blob
         * membership up to a permutation */
        int label_of_blob[K] = {-1, -1, -1, -1}, wrong = 0;
        bool used[K] = {false};
        for (int i = 0; i < N; i++) {
            int b = blob_of[i], l = L_default[i];
            if (l < 0 || l >= K) {
                wrong++;
            } else if (label_of_blob[b] < 0 && !used[l]) {
                label_of_blob[b] = l;
                used[l] = true;
            } else if (label_of_blob[b] != l) {
                wrong++;
            }
        }
        CHECK(wrong == 0, "default (k-means++) fit: %d labels disagree with the blobs", wrong);
    }

    rc = run("fit", "-k", "4", "--init", "k-means++", "--centroids", P("C_pp.npy"), "--labels",
             P("L_pp.npy"), "--quiet", P("x_f32.npy"), NULL);
    err = last_stderr();
    if (CHECK(rc == 0, "--init k-means++: exit status %d: %s", rc, err) && ok &&
        read_labels("L_pp.npy", L_pp) && read_centroids("C_pp.npy", C_pp))
        CHECK(memcmp(L_pp, L_default, sizeof L_pp) == 0 &&
                  memcmp(C_pp, C_default, sizeof C_pp) == 0,
              "--init k-means++ differs from the default init");
    free(err);

    rc = run("fit", "-k", "4", "--init", "random", "--seed", "3", P("x_f32.npy"), NULL);
    err = last_stderr();
    if (CHECK(rc == 0, "--init random: exit status %d: %s", rc, err))
        CHECK(stderr_has("flashkm: fit n=200", "init=random"),
              "--init random: the summary does not say init=random");
    free(err);
    rc = run("fit", "-k", "4", "--init", P("init.npy"), "--quiet", P("x_f32.npy"), NULL);
    CHECK(rc == 0, "--init PATH: exit status %d", rc);

    rc = run("fit", "-k", "4", "--init", "kmeans", P("x_f32.npy"), NULL);
    CHECK(rc == 1, "--init with a missing file: exit status %d, expected 1", rc);
    expect_one_error_line("--init kmeans (no such file)", "kmeans");
}

/* --n-init R: the result is one of the R single fits with seeds S .. S + R - 1, the one with
 * the lowest inertia; bad values are usage errors. */
static void test_n_init(void)
{
    enum { R = 3, KN = 7 }; /* 7 clusters on 4 blobs: the runs find different splits */
    static float C[R][KN * D], CN[KN * D];
    static int32_t L[R][N], LN[N];
    double inertia[R], inertia_n;
    const uint64_t S = 5;
    for (int r = 0; r < R; r++) {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)(S + (uint64_t)r));
        int rc = run("fit", "-k", "7", "--seed", seed, "--centroids", P("C_r.npy"), "--labels",
                     P("L_r.npy"), P("x_f32.npy"), NULL);
        char *err = last_stderr();
        bool ok = CHECK(rc == 0, "single fit with seed %s: exit status %d: %s", seed, rc, err);
        free(err);
        if (!ok) return;
        inertia[r] = summary_inertia();
        fkm_matrix m;
        if (!read_labels("L_r.npy", L[r]) ||
            !CHECK(fkm_matrix_load(NULL, P("C_r.npy"), &m) == FKM_OK && m.rows == KN &&
                       m.cols == D && m.dtype == FKM_F32,
                   "seed %s: bad centroids file", seed))
            return;
        memcpy(C[r], m.data, sizeof C[r]);
        fkm_matrix_free(&m);
    }
    int rc = run("fit", "-k", "7", "--seed", "5", "--n-init", "3", "--centroids", P("C_n.npy"),
                 "--labels", P("L_n.npy"), P("x_f32.npy"), NULL);
    char *err = last_stderr();
    bool ok = CHECK(rc == 0, "--n-init 3: exit status %d: %s", rc, err);
    free(err);
    if (!ok) return;
    inertia_n = summary_inertia();
    if (getenv("FKM_TEST_VERBOSE"))
        printf("n-init: seeds 5, 6, 7: inertia %.6e %.6e %.6e; --n-init 3: %.6e\n", inertia[0],
               inertia[1], inertia[2], inertia_n);
    CHECK(stderr_has("flashkm: fit n=200", "n-init=3") &&
              stderr_has("flashkm: fit n=200", "best of 3 runs"),
          "--n-init 3: the summary does not mention the 3 runs");
    CHECK(count_stderr_lines("run ") == R, "--n-init 3: expected %d run header lines, got %d", R,
          count_stderr_lines("run "));
    fkm_matrix m;
    if (!read_labels("L_n.npy", LN) ||
        !CHECK(fkm_matrix_load(NULL, P("C_n.npy"), &m) == FKM_OK && m.rows == KN && m.cols == D &&
                   m.dtype == FKM_F32,
               "--n-init 3: bad centroids file"))
        return;
    memcpy(CN, m.data, sizeof CN);
    fkm_matrix_free(&m);
    int match = -1;
    for (int r = R - 1; r >= 0; r--)
        if (memcmp(CN, C[r], sizeof CN) == 0 && memcmp(LN, L[r], sizeof LN) == 0) match = r;
    if (CHECK(match >= 0, "--n-init 3 --seed 5: the result equals none of the fits with seeds "
                          "5, 6, 7 (inertias %.6e %.6e %.6e, got %.6e)",
              inertia[0], inertia[1], inertia[2], inertia_n)) {
        double best = fmin(inertia[0], fmin(inertia[1], inertia[2]));
        CHECK(inertia[match] <= best, "--n-init 3: kept seed %d of inertia %.6e, but the best is "
                                      "%.6e", (int)S + match, inertia[match], best);
        CHECK(inertia_n == inertia[match], "--n-init 3: summary inertia %.6e, the run's %.6e",
              inertia_n, inertia[match]);
    }

    /* batched: problem b is the fit of it alone with seed S + b and the same --n-init */
    static float CB[B * K * D], C1[K * D];
    static int32_t LB[B * N], L1[N];
    rc = run("fit", "-k", "4", "--seed", "2", "--n-init", "2", "--centroids", P("CBn.npy"),
             "--labels", P("LBn.npy"), P("xb.npy"), NULL);
    err = last_stderr();
    ok = CHECK(rc == 0, "batched --n-init 2: exit status %d: %s", rc, err);
    free(err);
    char shape[32];
    snprintf(shape, sizeof shape, "(%d, %d)", B, N);
    if (ok) CHECK(stderr_has("flashkm: fit batch=3", "n-init=2"),
                  "batched --n-init 2: the summary does not mention n-init=2");
    if (ok && read_centroids_batch("CBn.npy", B, CB) &&
        read_int32_npy("LBn.npy", shape, B * N, LB)) {
        for (int b = 0; b < B; b++) {
            char xname[32], seed[32];
            snprintf(xname, sizeof xname, "xb_%d.npy", b);
            snprintf(seed, sizeof seed, "%d", 2 + b);
            rc = run("fit", "-k", "4", "--seed", seed, "--n-init", "2", "--centroids",
                     P("C1.npy"), "--labels", P("L1.npy"), "--quiet", P(xname), NULL);
            if (CHECK(rc == 0, "--n-init 2 of problem %d alone: exit status %d", b, rc) &&
                read_centroids("C1.npy", C1) && read_labels("L1.npy", L1))
                CHECK(memcmp(C1, CB + b * K * D, sizeof C1) == 0 &&
                          memcmp(L1, LB + b * N, sizeof L1) == 0,
                      "batched --n-init 2: problem %d differs from its fit alone", b);
        }
    }

    /* usage errors: R < 1, not an integer, R > 1 with an init file */
    static const char *const bad[] = {"0", "-1", "abc", "2.5", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = run("fit", "-k", "4", "--n-init", bad[i], P("x_f32.npy"), NULL);
        CHECK(rc == 2, "--n-init %s: exit status %d, expected 2", bad[i], rc);
        expect_one_error_line("bad --n-init", "--n-init");
    }
    remove(P("L_nerr.npy"));
    rc = run("fit", "-k", "4", "--n-init", "3", "--init", P("init.npy"), "--labels",
             P("L_nerr.npy"), P("x_f32.npy"), NULL);
    CHECK(rc == 2, "--n-init 3 with --init PATH: exit status %d, expected 2", rc);
    expect_one_error_line("--n-init 3 with --init PATH", "--n-init");
    CHECK(!file_exists(P("L_nerr.npy")), "--n-init usage error: an output was created");
    rc = run("fit", "-k", "4", "--n-init", "1", "--init", P("init.npy"), "--quiet",
             P("x_f32.npy"), NULL);
    CHECK(rc == 0, "--n-init 1 with --init PATH: exit status %d", rc);
}

/* --weights: integer weights give the fit of the data with each row repeated that often
 * (same init, --tol 0 so that both stop when the labels stop changing). */
static void test_weights(void)
{
    static double w[N];
    static int32_t LW[N], LR[3 * N], LP[N];
    static float CW[K * D], CR[K * D];
    int rows = 0;
    for (int i = 0; i < N; i++) {
        w[i] = (i % 7 == 6) ? 0.0 : (double)(1 + (i * 5) % 3); /* 0 (some rows), 1, 2 or 3 */
        rows += (int)w[i];
    }
    /* X with row i written w[i] times; points 0..3 (the init rows) all have weight >= 1 */
    FILE *f = create("x_rep.npy");
    char shape[64];
    snprintf(shape, sizeof shape, "(%d, %d)", rows, D);
    npy_header_shape(f, "<f4", shape);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < (int)w[i]; c++)
            for (int t = 0; t < D; t++) put_f32(f, X[i][t]);
    finish(f);
    snprintf(shape, sizeof shape, "(%d,)", N);
    write_weights("w_f64.npy", "<f8", shape, w, N);
    snprintf(shape, sizeof shape, "(%d, 1)", N);
    write_weights("w_f32_col.npy", "<f4", shape, w, N);

    int rc = run("fit", "-k", "4", "--init", P("init.npy"), "--tol", "0", "--centroids",
                 P("C_rep.npy"), "--labels", P("L_rep.npy"), P("x_rep.npy"), NULL);
    char *err = last_stderr();
    bool ok = CHECK(rc == 0, "fit of the repeated rows: exit status %d: %s", rc, err);
    free(err);
    double inertia_rep = summary_inertia();
    char lshape[32];
    snprintf(lshape, sizeof lshape, "(%d,)", rows);
    if (!ok || !read_centroids("C_rep.npy", CR) ||
        !read_int32_npy("L_rep.npy", lshape, (size_t)rows, LR))
        return;

    static const char *const wfiles[] = {"w_f64.npy", "w_f32_col.npy"};
    for (size_t v = 0; v < 2; v++) {
        rc = run("fit", "-k", "4", "--init", P("init.npy"), "--tol", "0", "--weights",
                 P(wfiles[v]), "--centroids", P("C_w.npy"), "--labels", P("L_w.npy"),
                 P("x_f32.npy"), NULL);
        err = last_stderr();
        ok = CHECK(rc == 0, "--weights %s: exit status %d: %s", wfiles[v], rc, err);
        free(err);
        if (!ok) continue;
        double inertia_w = summary_inertia();
        if (getenv("FKM_TEST_VERBOSE"))
            printf("--weights %s: inertia %.6e, repeated rows %.6e\n", wfiles[v], inertia_w,
                   inertia_rep);
        CHECK(fabs(inertia_w - inertia_rep) <= 1e-5 * fabs(inertia_rep),
              "--weights %s: inertia %.6e, repeated rows %.6e", wfiles[v], inertia_w,
              inertia_rep);
        if (!read_centroids("C_w.npy", CW) || !read_labels("L_w.npy", LW)) continue;
        double worst = 0;
        for (int j = 0; j < K * D; j++) {
            double e = fabs((double)CW[j] - CR[j]) / (1.0 + fabs((double)CR[j]));
            if (e > worst) worst = e;
        }
        if (getenv("FKM_TEST_VERBOSE"))
            printf("--weights %s: centroids off by %.3g (relative)\n", wfiles[v], worst);
        CHECK(worst <= 1e-6, "--weights %s: centroids off the repeated-rows fit's by %.3g",
              wfiles[v], worst);
        /* row i's label is the label of its copies (rows of weight 0 have none) */
        int wrong = 0;
        for (int i = 0, at = 0; i < N; at += (int)w[i], i++)
            for (int c = 0; c < (int)w[i]; c++) wrong += LW[i] != LR[at + c];
        CHECK(wrong == 0, "--weights %s: %d labels differ from those of the repeated rows",
              wfiles[v], wrong);
        /* and every label, weight 0 or not, is the nearest centroid's */
        rc = run("predict", "--centroids", P("C_w.npy"), "--labels", P("P_w.npy"), "--quiet",
                 P("x_f32.npy"), NULL);
        if (CHECK(rc == 0, "predict with the weighted centroids: exit status %d", rc) &&
            read_labels("P_w.npy", LP))
            CHECK(memcmp(LP, LW, sizeof LP) == 0, "--weights %s: labels are not the nearest "
                                                  "centroids'", wfiles[v]);
    }

    /* batched: (B, N) weights, problem b's in row b; each problem as its fit alone */
    static double wb[B * N];
    static float CB[B * K * D], C1[K * D];
    static int32_t LB[B * N], L1[N];
    for (int i = 0; i < B * N; i++) wb[i] = 0.5 + (double)((i * 3) % 4);
    snprintf(shape, sizeof shape, "(%d, %d)", B, N);
    write_weights("wb.npy", "<f8", shape, wb, B * N);
    rc = run("fit", "-k", "4", "--init", P("ib.npy"), "--weights", P("wb.npy"), "--centroids",
             P("CBw.npy"), "--labels", P("LBw.npy"), "--quiet", P("xb.npy"), NULL);
    err = last_stderr();
    ok = CHECK(rc == 0, "batched --weights: exit status %d: %s", rc, err);
    free(err);
    char bshape[32];
    snprintf(bshape, sizeof bshape, "(%d, %d)", B, N);
    if (ok && read_centroids_batch("CBw.npy", B, CB) &&
        read_int32_npy("LBw.npy", bshape, B * N, LB)) {
        for (int b = 0; b < B; b++) {
            char xname[32], iname[32], wname[32], wshape[32];
            snprintf(xname, sizeof xname, "xb_%d.npy", b);
            snprintf(iname, sizeof iname, "ib_%d.npy", b);
            snprintf(wname, sizeof wname, "wb_%d.npy", b);
            snprintf(wshape, sizeof wshape, "(%d,)", N);
            write_weights(wname, "<f4", wshape, wb + b * N, N);
            rc = run("fit", "-k", "4", "--init", P(iname), "--weights", P(wname), "--centroids",
                     P("C1.npy"), "--labels", P("L1.npy"), "--quiet", P(xname), NULL);
            if (CHECK(rc == 0, "weighted problem %d alone: exit status %d", b, rc) &&
                read_centroids("C1.npy", C1) && read_labels("L1.npy", L1))
                CHECK(memcmp(C1, CB + b * K * D, sizeof C1) == 0 &&
                          memcmp(L1, LB + b * N, sizeof L1) == 0,
                      "batched --weights: problem %d differs from its weighted fit alone", b);
        }
    }

    /* errors: exit 1, one line naming the file (and both sizes), no output left behind */
    double bad[N + 1];
    for (int i = 0; i <= N; i++) bad[i] = 1.0;
    snprintf(shape, sizeof shape, "(%d,)", N - 1);
    write_weights("w_short.npy", "<f4", shape, bad, N - 1);
    snprintf(shape, sizeof shape, "(%d,)", N + 1);
    write_weights("w_long.npy", "<f8", shape, bad, N + 1);
    snprintf(shape, sizeof shape, "(1, %d)", N);
    write_weights("w_row.npy", "<f4", shape, bad, N);
    bad[17] = -2.0;
    snprintf(shape, sizeof shape, "(%d,)", N);
    write_weights("w_neg.npy", "<f4", shape, bad, N);
    bad[17] = NAN;
    write_weights("w_nan.npy", "<f8", shape, bad, N);
    for (int i = 0; i < N; i++) bad[i] = 0.0;
    write_weights("w_zero.npy", "<f4", shape, bad, N);
    static const struct {
        const char *file, *input, *word1, *word2;
    } cases[] = {
        {"w_short.npy", "x_f32.npy", "199", "200"},
        {"w_long.npy", "x_f32.npy", "201", "200"},
        {"w_row.npy", "x_f32.npy", "w_row.npy", "200"},
        {"wb.npy", "x_f32.npy", "wb.npy", "200"},       /* (B, N) weights for 2-D data */
        {"w_f64.npy", "xb.npy", "w_f64.npy", "(3, 200)"}, /* (N,) weights for a batch */
        {"w_neg.npy", "x_f32.npy", "w_neg.npy", "negative"},
        {"w_nan.npy", "x_f32.npy", "w_nan.npy", "weight[17]"},
        {"w_zero.npy", "x_f32.npy", "w_zero.npy", NULL},
        {"nosuch_w.npy", "x_f32.npy", "nosuch_w.npy", NULL},
        {"x_f32.npy", "x_f32.npy", "x_f32.npy", "200"}, /* a 200 x 5 matrix */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        remove(P("L_werr.npy"));
        remove(P("C_werr.npy"));
        const char *init = strcmp(cases[i].input, "xb.npy") == 0 ? "ib.npy" : "init.npy";
        rc = run("fit", "-k", "4", "--init", P(init), "--weights", P(cases[i].file), "--labels",
                 P("L_werr.npy"), "--centroids", P("C_werr.npy"), P(cases[i].input), NULL);
        char what[96];
        snprintf(what, sizeof what, "--weights %s for %s", cases[i].file, cases[i].input);
        CHECK(rc == 1, "%s: exit status %d, expected 1", what, rc);
        expect_one_error_line(what, cases[i].word1);
        if (cases[i].word2) expect_one_error_line(what, cases[i].word2);
        CHECK(!file_exists(P("L_werr.npy")) && !file_exists(P("C_werr.npy")),
              "%s: an output was created", what);
    }
    rc = run("predict", "--centroids", P("init.npy"), "--weights", P("w_f64.npy"),
             P("x_f32.npy"), NULL);
    CHECK(rc == 2, "predict --weights: exit status %d, expected 2", rc);
    expect_one_error_line("predict --weights", "--weights");
}

/* Whether dir holds any file other than `keep`. */
static bool dir_has_other_files(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    if (!d) return true;
    bool other = false;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep))
            other = true;
    closedir(d);
    return other;
}

static void test_errors(void)
{
    remove(P("L_err.npy"));
    int rc = run("fit", "-k", "4", "--labels", P("L_err.npy"), P("nosuch.npy"), NULL);
    CHECK(rc == 1, "missing input: exit status %d, expected 1", rc);
    expect_one_error_line("missing input", "nosuch.npy");
    CHECK(!file_exists(P("L_err.npy")), "missing input: an output was created");

    rc = run("fit", "-k", "4", "--frobnicate", P("x_f32.npy"), NULL);
    CHECK(rc == 2, "unknown option: exit status %d, expected 2", rc);
    expect_one_error_line("unknown option", "--frobnicate");

    rc = run("fit", "-k", "0", P("x_f32.npy"), NULL);
    CHECK(rc == 2, "-k 0: exit status %d, expected 2", rc);
    expect_one_error_line("-k 0", "-k");

    rc = run("fit", "-k", "4", NULL);
    CHECK(rc == 2, "no INPUT: exit status %d, expected 2", rc);
    expect_one_error_line("no INPUT", "INPUT");

    rc = run("fit", "-k", "4", "--tol", "1e400", P("x_f32.npy"), NULL);
    CHECK(rc == 2, "--tol 1e400: exit status %d, expected 2", rc);
    expect_one_error_line("--tol 1e400", "--tol");

    rc = run("fit", "-k", "4", "--gpu-mem", "12Q", P("x_f32.npy"), NULL);
    CHECK(rc == 2, "--gpu-mem 12Q: exit status %d, expected 2", rc);
    expect_one_error_line("--gpu-mem 12Q", "--gpu-mem");
    /* a budget is accepted with a suffix (the CPU backend ignores it) */
    rc = run("fit", "-k", "4", "--backend", "cpu", "--gpu-mem", "512M", "--quiet", P("x_f32.npy"), NULL);
    CHECK(rc == 0, "--gpu-mem 512M: exit status %d, expected 0", rc);
    rc = run("predict", "--centroids", P("init.npy"), "--backend", "cpu", "--gpu-mem", "1g", "--quiet",
             P("x_f32.npy"), NULL);
    CHECK(rc == 0, "predict --gpu-mem 1g: exit status %d, expected 0", rc);

    rc = run("fit", "-k", "201", "--labels", P("L_err.npy"), P("x_f32.npy"), NULL);
    CHECK(rc != 0, "K > N: exit status 0");
    expect_one_error_line("K > N", "k");
    CHECK(!file_exists(P("L_err.npy")), "K > N: an output was created");

    write_npy("init3.npy", "<f4", put_f32, 3);
    rc = run("fit", "-k", "4", "--init", P("init3.npy"), "--labels", P("L_err.npy"),
             P("x_f32.npy"), NULL);
    CHECK(rc == 1, "init of 3 rows for k 4: exit status %d, expected 1", rc);
    expect_one_error_line("bad init", "init3.npy");
    CHECK(!file_exists(P("L_err.npy")), "bad init: an output was created");

    /* a NaN in the data: the fit fails and neither output nor any temp file is left */
    CHECK(mkdir(P("nan"), 0755) == 0, "mkdir nan");
    write_csv("nan/x.csv", true, false, 17);
    rc = run("fit", "-k", "4", "--labels", P("nan/L.npy"), "--centroids", P("nan/C.npy"),
             P("nan/x.csv"), NULL);
    CHECK(rc != 0, "NaN input: exit status 0");
    expect_one_error_line("NaN input", NULL);
    CHECK(!dir_has_other_files(P("nan"), "x.csv"), "NaN input: files were left in nan/");

    /* the labels cannot be written: the centroids written before must be removed again */
    CHECK(mkdir(P("out"), 0755) == 0 && mkdir(P("out/L.npy"), 0755) == 0, "mkdir out");
    rc = run("fit", "-k", "4", "--init", P("init.npy"), "--centroids", P("out/C.npy"),
             "--labels", P("out/L.npy"), "--quiet", P("x_f32.npy"), NULL);
    CHECK(rc == 1, "unwritable labels: exit status %d, expected 1", rc);
    expect_one_error_line("unwritable labels", "L.npy");
    CHECK(!dir_has_other_files(P("out"), "L.npy"), "unwritable labels: files were left in out/");

    rc = run("predict", "--centroids", P("init.npy"), P("x_f32.npy"), "--labels", NULL);
    CHECK(rc == 2, "predict --labels without value: exit status %d", rc);
    expect_one_error_line("missing value", "--labels");

    write_npy("c6.npy", "<f8", put_f64, 6); /* 6 x 5 is fine: K may be anything */
    rc = run("predict", "--centroids", P("c6.npy"), "--quiet", P("x_f32.npy"), NULL);
    CHECK(rc == 0, "predict with 6 f64 centroids: exit status %d", rc);
    FILE *f = create("c_d4.fbin"); /* 2 centroids of d = 4 against d = 5 data */
    put_i32(f, 2);
    put_i32(f, 4);
    for (int i = 0; i < 8; i++) put_f32(f, 1.0f);
    finish(f);
    rc = run("predict", "--centroids", P("c_d4.fbin"), P("x_f32.npy"), NULL);
    CHECK(rc == 1, "predict with d mismatch: exit status %d, expected 1", rc);
    expect_one_error_line("d mismatch", "c_d4.fbin");
}

static void test_info_help(void)
{
    int rc = run("info", NULL);
    char *out = slurp(P("out.txt"), NULL);
    CHECK(rc == 0, "info: exit status %d", rc);
    CHECK(out && strstr(out, "simd"), "info: no 'simd' in: %s", out ? out : "");
    free(out);

    static const char *const helps[][2] = {{"--help", NULL}, {"fit", "--help"},
                                           {"predict", "-h"}, {"info", "--help"}, {"--version", NULL}};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        rc = run(helps[i][0], helps[i][1], NULL);
        out = slurp(P("out.txt"), NULL);
        CHECK(rc == 0, "%s %s: exit status %d", helps[i][0], helps[i][1] ? helps[i][1] : "", rc);
        CHECK(out && (strstr(out, "usage") || strstr(out, "flashkm 0.")), "%s: no usage printed",
              helps[i][0]);
        free(out);
    }
    rc = run(NULL);
    CHECK(rc == 2, "no command: exit status %d, expected 2", rc);
}


/* ---------------------------------------------------------------- files larger than memory */

/* An f32 .npy of rows x cols (a few blobs), written with stdio in pieces. */
static void write_big_npy(const char *name, int64_t rows, int cols)
{
    FILE *f = fopen(P(name), "wb");
    char header[128];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %d), }",
                       (long long)rows, cols);
    while ((10 + len + 1) % 64) header[len++] = ' ';
    header[len++] = '\n';
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff),
                                   (unsigned char)(len >> 8)};
    bool ok = f && fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)len, f) == (size_t)len;
    float row[64];
    uint64_t x = 12345;
    for (int64_t r = 0; ok && r < rows; r++) {
        for (int j = 0; j < cols; j++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            row[j] = (float)(r % 4) * 10.0f + (float)((x >> 40) & 0xffff) / 65536.0f;
        }
        ok = fwrite(row, sizeof(float), (size_t)cols, f) == (size_t)cols;
    }
    if (!f || fclose(f) != 0 || !ok) {
        fprintf(stderr, "test_cli: cannot write %s\n", P(name));
        exit(2);
    }
}

/* Whether RLIMIT_DATA binds here: a child with the limit must fail to get more memory. */
static bool data_limit_binds(size_t limit, size_t more)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {limit, limit};
        setrlimit(RLIMIT_DATA, &rl);
        char *p = malloc(more);
        if (p) memset(p, 1, more);
        _exit(p ? 1 : 0);
    }
    int st = 0;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* The CLI maps its input: a 100 MB .npy is clustered under a 64 MB data limit, which the
 * same data read into memory would exceed. Not under AddressSanitizer (its shadow memory
 * does not live with a data limit). */
static void test_larger_than_memory(void)
{
#ifdef FKM_TEST_SANITIZED
    printf("files larger than memory: skipped under the sanitizers\n");
#else
    const size_t limit = (size_t)64 << 20;
    if (!data_limit_binds(limit, (size_t)100 << 20)) {
        printf("files larger than memory: skipped (RLIMIT_DATA does not bind here)\n");
        return;
    }
    const int64_t rows = 800000;
    write_big_npy("big.npy", rows, 32); /* 102.4 MB */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "ulimit -d %zu && OMP_NUM_THREADS=2 exec ", limit >> 10);
    append_quoted(cmd, sizeof cmd, flashkm_bin);
    strcat(cmd, " fit -k 4 --init random --max-iter 3 --labels");
    append_quoted(cmd, sizeof cmd, P("big_labels.npy"));
    strcat(cmd, " --quiet");
    append_quoted(cmd, sizeof cmd, P("big.npy"));
    strcat(cmd, " 2>");
    append_quoted(cmd, sizeof cmd, P("err.txt"));
    const int st = system(cmd);
    char *err = last_stderr();
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "a 100 MB input under a 64 MB data limit failed: %s", err);
    CHECK(file_exists(P("big_labels.npy")), "no labels written for the mapped input");
    free(err);
    unlink(P("big.npy"));
    printf("files larger than memory: 100 MB .npy clustered under a 64 MB data limit (mapped)\n");
#endif
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_cli PATH-TO-flashkm\n");
        return 2;
    }
    flashkm_bin = argv[1];
    if (ts_make_dir("fkm_test_cli_") != 0) return 2;
    make_data();
    test_info_help();
    test_formats();
    test_precision_exact();
    test_progress();
    test_batch();
    test_init_methods();
    test_n_init();
    test_weights();
    test_errors();
    test_larger_than_memory();
    return ts_finish("test_cli");
}
