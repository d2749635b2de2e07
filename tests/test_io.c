/* test_io.c — the file readers and writers of src/io.
 *
 * Inputs for the readers are written byte by byte by this file's own small writers (never by
 * the library's), so a bug shared by a library writer and reader cannot hide. The writers are
 * checked separately: round trips, the exact header layout, and failure leaving nothing behind.
 * Every failure case checks the status and that fkm_last_error says something.
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
#include <sys/stat.h>
#include <unistd.h>

static fkm_ctx *ctx;

#define CHECK TS_CHECK

#define P ts_path

/* ---------------------------------------------------------------- hand writers */

static void write_text(const char *name, const char *text)
{
    ts_write_file(name, text, strlen(text));
}

/* A .npy with the header text given verbatim (so tests can make any header, good or bad),
 * padded with spaces and '\n' to a multiple of 16 (what NumPy < 1.16 did), followed by n
 * data bytes. major = 1 uses the 2-byte length field, 2 and 3 the 4-byte one. */
static void write_npy_raw(const char *name, int major, const char *dict, const void *data,
                          size_t n)
{
    size_t prelude = major == 1 ? 10 : 12;
    size_t hlen = strlen(dict) + 1;
    hlen += (16 - (prelude + hlen) % 16) % 16;
    size_t total = prelude + hlen + n;
    unsigned char *buf = malloc(total);
    if (!buf) exit(2);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < prelude - 8; i++) buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    memset(buf + prelude, ' ', hlen);
    memcpy(buf + prelude, dict, strlen(dict));
    buf[prelude + hlen - 1] = '\n';
    if (n) memcpy(buf + prelude + hlen, data, n);
    ts_write_file(name, buf, total);
    free(buf);
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* .fbin: header n, d (which may lie), then `count` floats from vals. */
static void write_fbin(const char *name, int32_t n, int32_t d, const float *vals, size_t count)
{
    size_t total = 8 + 4 * count;
    unsigned char *buf = malloc(total);
    if (!buf) exit(2);
    put_le32(buf, (uint32_t)n);
    put_le32(buf + 4, (uint32_t)d);
    memcpy(buf + 8, vals, 4 * count);
    ts_write_file(name, buf, total);
    free(buf);
}

/* .fvecs: rows of dims[i] floats taken in order from vals; drop_bytes cut off the end. */
static void write_fvecs(const char *name, const int32_t *dims, int rows, const float *vals,
                        size_t drop_bytes)
{
    unsigned char buf[4096];
    size_t len = 0;
    for (int i = 0; i < rows; i++) {
        put_le32(buf + len, (uint32_t)dims[i]);
        len += 4;
        memcpy(buf + len, vals, 4 * (size_t)dims[i]);
        vals += dims[i];
        len += 4 * (size_t)dims[i];
    }
    ts_write_file(name, buf, len - drop_bytes);
}

/* ---------------------------------------------------------------- helpers */

static const float vals12[12] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 7.0f,
                                 -8.0f, 9.5f, 10.0f, 11.0f, -12.0f, 1e6f};

/* Loads name and checks it is a rows x cols matrix of dtype in `batch` problems whose bytes
 * equal expect. */
/* fkm_matrix_load and fkm_matrix_map (mode 0 and 1) both give the expected matrix; the mapped
 * one is compared row by row through its leading dimension. */
static fkm_status open_mode(int mode, const char *name, fkm_matrix *m)
{
    return mode ? fkm_matrix_map(ctx, P(name), m) : fkm_matrix_load(ctx, P(name), m);
}

static void expect_batch(const char *name, fkm_dtype dtype, int64_t batch, int64_t rows,
                         int64_t cols, const void *expect)
{
    for (int mode = 0; mode < 2; mode++) {
        const char *how = mode ? "map" : "load";
        fkm_matrix m;
        fkm_status s = open_mode(mode, name, &m);
        if (!CHECK(s == FKM_OK, "%s (%s): failed: %s (%s)", name, how, fkm_status_string(s), fkm_last_error(ctx)))
            continue;
        CHECK(m.dtype == dtype, "%s (%s): dtype %s, expected %s", name, how, fkm_dtype_name(m.dtype),
              fkm_dtype_name(dtype));
        CHECK(m.rows == rows && m.cols == cols, "%s (%s): shape %lld x %lld, expected %lld x %lld", name, how,
              (long long)m.rows, (long long)m.cols, (long long)rows, (long long)cols);
        CHECK(m.batch == batch, "%s (%s): batch %lld, expected %lld", name, how, (long long)m.batch,
              (long long)batch);
        CHECK(m.ld >= m.cols && (mode || m.ld == m.cols), "%s (%s): ld %lld", name, how, (long long)m.ld);
        CHECK(!mode == !m.map_base || strstr(name, ".csv") != NULL, "%s (%s): mapped %d", name, how,
              m.map_base != NULL);
        if (m.dtype == dtype && m.rows == rows && m.cols == cols) {
            const size_t es = fkm_dtype_size(dtype);
            bool same = true;
            for (int64_t r = 0; r < rows; r++)
                same = same && memcmp((const char *)m.data + (size_t)(r * m.ld) * es,
                                      (const char *)expect + (size_t)(r * cols) * es, (size_t)cols * es) == 0;
            CHECK(same, "%s (%s): data differs", name, how);
        }
        fkm_matrix_free(&m);
        CHECK(m.data == NULL && m.rows == 0 && m.batch == 0 && m.map_base == NULL,
              "%s (%s): fkm_matrix_free did not zero the struct", name, how);
    }
}

/* Every 2-D matrix file loads as a batch of 1. */
static void expect_matrix(const char *name, fkm_dtype dtype, int64_t rows, int64_t cols,
                          const void *expect)
{
    expect_batch(name, dtype, 1, rows, cols, expect);
}

/* Loads name and checks it fails with status want, a message, and mentions `word` (if
 * given). */
static void expect_load_error(const char *name, fkm_status want, const char *word)
{
    for (int mode = 0; mode < 2; mode++) { /* load and map check the same things */
        fkm_matrix m;
        fkm_status s = open_mode(mode, name, &m);
        const char *msg = fkm_last_error(ctx);
        CHECK(s == want, "%s (%s): status %s, expected %s (message: %s)", name, mode ? "map" : "load",
              fkm_status_string(s), fkm_status_string(want), msg);
        CHECK(msg && msg[0], "%s: empty error message", name);
        if (word) CHECK(strstr(msg, word) != NULL, "%s: message '%s' lacks '%s'", name, msg, word);
        if (getenv("FKM_TEST_VERBOSE")) printf("%-16s %-16s %s\n", name, fkm_status_string(s), msg);
        if (s == FKM_OK) fkm_matrix_free(&m);
    }
}

/* Whether any file in the temp dir has ".tmp." in its name (a leaked temporary file). */
static bool temp_file_left(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) found = true;
    closedir(d);
    return found;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(1 << 16);
    *n = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

/* ---------------------------------------------------------------- writers */

/* Random bytes (not only finite values: the writer and reader must not interpret data). */
static void fill_random(void *p, size_t n, uint64_t *state)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (unsigned char)(*state >> 56);
    }
}

/* The layout the writer promises: version 1.0, header ends in '\n', and magic + header is a
 * multiple of 64 bytes. */
static void check_npy_layout(const char *name, const char *descr, const char *shape,
                             size_t data_bytes)
{
    size_t n = 0;
    unsigned char *b = read_all(P(name), &n);
    if (!CHECK(b != NULL, "%s: cannot read back", name)) return;
    size_t hlen = (size_t)b[8] | ((size_t)b[9] << 8);
    CHECK(n >= 10 && memcmp(b, "\x93NUMPY\x01\x00", 8) == 0, "%s: bad magic/version", name);
    CHECK((10 + hlen) % 64 == 0, "%s: header not padded to 64 bytes", name);
    CHECK(10 + hlen + data_bytes == n, "%s: size %zu, expected %zu", name, n,
          10 + hlen + data_bytes);
    if (10 + hlen <= n) {
        CHECK(b[10 + hlen - 1] == '\n', "%s: header does not end in newline", name);
        char *text = strndup((char *)b + 10, hlen);
        CHECK(text && strstr(text, descr), "%s: header lacks %s: %s", name, descr, text ? text : "(none)");
        CHECK(text && strstr(text, shape), "%s: header lacks %s: %s", name, shape, text ? text : "(none)");
        CHECK(text && strstr(text, "'fortran_order': False"), "%s: fortran_order", name);
        free(text);
    }
    free(b);
}

static void test_round_trip(void)
{
    static const struct {
        fkm_dtype dtype;
        const char *descr;
    } cases[] = {{FKM_F32, "'<f4'"}, {FKM_F16, "'<f2'"}, {FKM_BF16, "'<V2'"}, {FKM_F64, "'<f8'"}};
    uint64_t state = 42;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t rows = 7, cols = 5;
        size_t bytes = (size_t)(rows * cols) * fkm_dtype_size(cases[c].dtype);
        unsigned char data[7 * 5 * 8];
        fill_random(data, bytes, &state);
        char name[64];
        snprintf(name, sizeof name, "rt_%s.npy", fkm_dtype_name(cases[c].dtype));
        fkm_status s = fkm_npy_save_matrix(ctx, P(name), data, cases[c].dtype, rows, cols);
        if (!CHECK(s == FKM_OK, "save %s: %s", name, fkm_last_error(ctx))) continue;
        check_npy_layout(name, cases[c].descr, "(7, 5)", bytes);
        expect_matrix(name, cases[c].dtype, rows, cols, data);
    }

    /* 3-D (batch, rows, cols): loads as batch problems of rows x cols, packed */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t batch = 3, rows = 4, cols = 5;
        size_t bytes = (size_t)(batch * rows * cols) * fkm_dtype_size(cases[c].dtype);
        unsigned char data[3 * 4 * 5 * 8];
        fill_random(data, bytes, &state);
        char name[64];
        snprintf(name, sizeof name, "rt3_%s.npy", fkm_dtype_name(cases[c].dtype));
        fkm_status s = fkm_npy_save_batch(ctx, P(name), data, cases[c].dtype, batch, rows, cols);
        if (!CHECK(s == FKM_OK, "save %s: %s", name, fkm_last_error(ctx))) continue;
        check_npy_layout(name, cases[c].descr, "(3, 4, 5)", bytes);
        expect_batch(name, cases[c].dtype, batch, batch * rows, cols, data);
    }
    /* a batch of one is still 3-D in the file, and loads with batch 1 */
    CHECK(fkm_npy_save_batch(ctx, P("rt3_one.npy"), vals12, FKM_F32, 1, 3, 4) == FKM_OK,
          "save batch of 1: %s", fkm_last_error(ctx));
    check_npy_layout("rt3_one.npy", "'<f4'", "(1, 3, 4)", sizeof vals12);
    expect_batch("rt3_one.npy", FKM_F32, 1, 3, 4, vals12);

    /* overwriting an existing file works and keeps no temp file */
    float one = 1.0f;
    CHECK(fkm_npy_save_matrix(ctx, P("rt_f32.npy"), &one, FKM_F32, 1, 1) == FKM_OK,
          "overwrite: %s", fkm_last_error(ctx));
    expect_matrix("rt_f32.npy", FKM_F32, 1, 1, &one);

    /* permissions are those of a plain fopen, not mkstemp's 0600 */
    mode_t mask = umask(022);
    umask(mask);
    struct stat st;
    CHECK(stat(P("rt_f16.npy"), &st) == 0 && (st.st_mode & 0777) == (0666 & ~mask),
          "saved file mode %o, expected %o", (unsigned)(st.st_mode & 0777),
          (unsigned)(0666 & ~mask));

    int32_t labels[9] = {0, 1, 2, 3, -1, 7, 100000, 2, 0};
    CHECK(fkm_npy_save_labels(ctx, P("labels.npy"), labels, 9) == FKM_OK, "save labels: %s",
          fkm_last_error(ctx));
    check_npy_layout("labels.npy", "'<i4'", "(9,)", sizeof labels);
    size_t n = 0;
    unsigned char *b = read_all(P("labels.npy"), &n);
    CHECK(b && n >= sizeof labels && memcmp(b + n - sizeof labels, labels, sizeof labels) == 0,
          "labels data differs");
    free(b);

    CHECK(fkm_npy_save_labels_batch(ctx, P("labels3.npy"), labels, 3, 3) == FKM_OK,
          "save batched labels: %s", fkm_last_error(ctx));
    check_npy_layout("labels3.npy", "'<i4'", "(3, 3)", sizeof labels);
    b = read_all(P("labels3.npy"), &n);
    CHECK(b && n >= sizeof labels && memcmp(b + n - sizeof labels, labels, sizeof labels) == 0,
          "batched labels data differs");
    free(b);
    CHECK(!temp_file_left(ts_dir()), "a temporary file was left behind");
}

static void expect_save_error(fkm_status got, fkm_status want, const char *what)
{
    const char *msg = fkm_last_error(ctx);
    CHECK(got == want, "%s: status %s, expected %s (%s)", what, fkm_status_string(got),
          fkm_status_string(want), msg);
    CHECK(msg[0] != '\0', "%s: empty message", what);
}

static void test_save_errors(void)
{
    float x[4] = {0};
    int32_t l[2] = {0};
    expect_save_error(fkm_npy_save_matrix(ctx, NULL, x, FKM_F32, 2, 2), FKM_E_NULL, "NULL path");
    expect_save_error(fkm_npy_save_matrix(ctx, P("e.npy"), NULL, FKM_F32, 2, 2), FKM_E_NULL,
                      "NULL data");
    expect_save_error(fkm_npy_save_matrix(ctx, P("e.npy"), x, FKM_F32, 0, 2), FKM_E_INVALID,
                      "rows 0");
    expect_save_error(fkm_npy_save_matrix(ctx, P("e.npy"), x, FKM_F32, 2, -1), FKM_E_INVALID,
                      "cols -1");
    expect_save_error(fkm_npy_save_matrix(ctx, P("e.npy"), x, (fkm_dtype)99, 2, 2), FKM_E_DTYPE,
                      "dtype 99");
    expect_save_error(fkm_npy_save_matrix(ctx, P("e.npy"), x, FKM_F32, INT64_MAX / 2, 4),
                      FKM_E_OVERFLOW, "huge");
    expect_save_error(fkm_npy_save_labels(ctx, P("e.npy"), l, 0), FKM_E_INVALID, "n 0");
    expect_save_error(fkm_npy_save_labels(ctx, P("e.npy"), NULL, 2), FKM_E_NULL, "NULL labels");
    expect_save_error(fkm_npy_save_batch(ctx, P("e.npy"), x, FKM_F32, 0, 2, 2), FKM_E_INVALID,
                      "batch 0");
    expect_save_error(fkm_npy_save_batch(ctx, P("e.npy"), x, FKM_F32, 2, 2, 0), FKM_E_INVALID,
                      "batch cols 0");
    expect_save_error(fkm_npy_save_batch(ctx, NULL, x, FKM_F32, 1, 2, 2), FKM_E_NULL,
                      "batch NULL path");
    expect_save_error(fkm_npy_save_batch(ctx, P("e.npy"), NULL, FKM_F32, 1, 2, 2), FKM_E_NULL,
                      "batch NULL data");
    expect_save_error(fkm_npy_save_batch(ctx, P("e.npy"), x, (fkm_dtype)99, 1, 2, 2),
                      FKM_E_DTYPE, "batch dtype 99");
    expect_save_error(fkm_npy_save_batch(ctx, P("e.npy"), x, FKM_F32, INT64_MAX / 4, 4, 2),
                      FKM_E_OVERFLOW, "batch huge");
    expect_save_error(fkm_npy_save_batch(ctx, P("e.npy"), x, FKM_F64, 1 << 20, 1 << 20, 1 << 21),
                      FKM_E_OVERFLOW, "batch huge bytes");
    expect_save_error(fkm_npy_save_labels_batch(ctx, P("e.npy"), l, 2, 0), FKM_E_INVALID,
                      "labels batch n 0");
    expect_save_error(fkm_npy_save_labels_batch(ctx, P("e.npy"), l, -1, 2), FKM_E_INVALID,
                      "labels batch -1");
    expect_save_error(fkm_npy_save_labels_batch(ctx, P("e.npy"), NULL, 1, 2), FKM_E_NULL,
                      "labels batch NULL");
    CHECK(!file_exists(P("e.npy")), "an argument error created a file");

    /* a directory that does not exist: mkstemp fails, nothing is created */
    expect_save_error(fkm_npy_save_matrix(ctx, P("nosuch/out.npy"), x, FKM_F32, 2, 2), FKM_E_IO,
                      "missing directory");
    CHECK(!file_exists(P("nosuch")), "missing directory was created");

    /* the target is a directory: the temp file is written, the rename fails, and the temp
     * file must be removed again */
    CHECK(mkdir(P("adir.npy"), 0755) == 0, "mkdir");
    expect_save_error(fkm_npy_save_labels(ctx, P("adir.npy"), l, 2), FKM_E_IO, "onto directory");
    struct stat st;
    CHECK(stat(P("adir.npy"), &st) == 0 && S_ISDIR(st.st_mode), "directory target was replaced");
    CHECK(!temp_file_left(ts_dir()), "failed save left a temporary file");

    /* no context at all is allowed */
    CHECK(fkm_npy_save_labels(NULL, P("nosuch/x.npy"), l, 2) == FKM_E_IO, "NULL ctx save");
}

/* ---------------------------------------------------------------- readers, good input */

/* Hand-written headers (any key order, quotes, whitespace, trailing commas, versions 1-3,
 * Python 2's long suffix), every dtype, 1-D (N,) read as N x 1, 3-D (B, N, D) as B problems,
 * and a case-insensitive extension: each file written raw and read back. batch 0: a matrix. */
static void test_npy_hand(void)
{
    static const uint16_t half[4] = {0x3c00, 0xc000, 0x0001, 0x7bff}; /* 1, -2, tiniest, 65504 */
    static const uint16_t bf[4] = {0x3f80, 0xc000, 0x4049, 0x0000};   /* 1, -2, ~3.14, 0 */
    static const double dbl[3] = {1.0 / 3.0, -1e300, 5e-324};
    static const struct {
        const char *file;
        int major;
        const char *dict;
        const void *data;
        size_t bytes;
        fkm_dtype dtype;
        int64_t batch, rows, cols;
    } cases[] = {
        {"v1.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
         vals12, sizeof vals12, FKM_F32, 0, 3, 4},
        {"v2.npy", 2, "{ \"shape\" :( 4 ,3 ),\"fortran_order\":False , \"descr\":\"<f4\"}",
         vals12, sizeof vals12, FKM_F32, 0, 4, 3},
        {"v3.npy", 3, "{'descr':'<f4','fortran_order':False,'shape':(6,2,),}",
         vals12, sizeof vals12, FKM_F32, 0, 6, 2},
        {"py2.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 6L), }",
         vals12, sizeof vals12, FKM_F32, 0, 2, 6},
        {"f2.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }",
         half, sizeof half, FKM_F16, 0, 2, 2},
        {"bf_lt.npy", 1, "{'descr': '<V2', 'fortran_order': False, 'shape': (4, 1), }",
         bf, sizeof bf, FKM_BF16, 0, 4, 1},
        {"bf_pipe.npy", 1, "{'descr': '|V2', 'fortran_order': False, 'shape': (1, 4), }",
         bf, sizeof bf, FKM_BF16, 0, 1, 4},
        {"f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), }",
         dbl, sizeof dbl, FKM_F64, 0, 1, 3},
        /* 3-D (B, N, D): B problems of N x D, packed; rows = B * N */
        {"b3.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2), }",
         vals12, sizeof vals12, FKM_F32, 3, 6, 2},
        {"b3v2.npy", 2, "{'shape':(2,3,2,),'descr':'<f4','fortran_order':False}",
         vals12, sizeof vals12, FKM_F32, 2, 6, 2},
        {"b3f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 1, 1), }",
         dbl, sizeof dbl, FKM_F64, 3, 3, 1},
        {"b3bf.npy", 1, "{'descr': '<V2', 'fortran_order': False, 'shape': (2, 1, 2), }",
         bf, sizeof bf, FKM_BF16, 2, 2, 2},
        /* 1-D (N,): a vector (per-point weights, say) read as an N x 1 matrix, in every dtype
         * and header spelling; (N, 1) gives the same matrix */
        {"v1d.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }",
         vals12, sizeof vals12, FKM_F32, 0, 12, 1},
        {"v1d_2.npy", 2, "{'shape':(12L,),'descr':'<f4','fortran_order':False}",
         vals12, sizeof vals12, FKM_F32, 0, 12, 1},
        {"v1d_f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
         dbl, sizeof dbl, FKM_F64, 0, 3, 1},
        {"v1d_f2.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
         half, sizeof half, FKM_F16, 0, 4, 1},
        {"v1d_one.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
         vals12, sizeof vals12[0], FKM_F32, 0, 1, 1},
        /* the extension is case-insensitive */
        {"upper.NPY", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
         vals12, sizeof vals12, FKM_F32, 0, 3, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_npy_raw(cases[c].file, cases[c].major, cases[c].dict, cases[c].data, cases[c].bytes);
        if (cases[c].batch > 0)
            expect_batch(cases[c].file, cases[c].dtype, cases[c].batch, cases[c].rows, cases[c].cols, cases[c].data);
        else
            expect_matrix(cases[c].file, cases[c].dtype, cases[c].rows, cases[c].cols, cases[c].data);
    }
}

static void test_fvecs_fbin(void)
{
    const int32_t dims[3] = {4, 4, 4};
    write_fvecs("a.fvecs", dims, 3, vals12, 0);
    expect_matrix("a.fvecs", FKM_F32, 3, 4, vals12);
    write_fbin("a.fbin", 2, 6, vals12, 12);
    expect_matrix("a.fbin", FKM_F32, 2, 6, vals12);
    write_fbin("b.FBIN", 12, 1, vals12, 12);
    expect_matrix("b.FBIN", FKM_F32, 12, 1, vals12);

    /* a fit over a mapped .fvecs (rows read through ld = d + 1) equals the fit over the
     * loaded copy, bit for bit */
    enum { R = 120, C = 7 }; /* 3840 bytes: write_fvecs's buffer holds 4096 */
    int32_t *rd = malloc(R * sizeof *rd);
    float *v = malloc((size_t)R * C * sizeof *v);
    uint32_t x = 7;
    for (int i = 0; i < R; i++) {
        rd[i] = C;
        for (int j = 0; j < C; j++) {
            x = x * 1664525u + 1013904223u;
            v[i * C + j] = (float)(i % 3) * 8.0f + (float)(x >> 8) / 16777216.0f;
        }
    }
    write_fvecs("fit.fvecs", rd, R, v, 0);
    fkm_matrix a, b;
    if (CHECK(fkm_matrix_load(ctx, P("fit.fvecs"), &a) == FKM_OK && fkm_matrix_map(ctx, P("fit.fvecs"), &b) == FKM_OK,
              "fit.fvecs: %s", fkm_last_error(ctx))) {
        fkm_params p = fkm_params_default();
        p.k = 3;
        float ca[3 * C], cb[3 * C];
        int32_t la[R], lb[R];
        CHECK(fkm_fit(ctx, &p, a.data, a.dtype, a.rows, a.cols, a.ld, NULL, ca, la, NULL) == FKM_OK &&
                  fkm_fit(ctx, &p, b.data, b.dtype, b.rows, b.cols, b.ld, NULL, cb, lb, NULL) == FKM_OK,
              "fit: %s", fkm_last_error(ctx));
        CHECK(b.ld == C + 1 && memcmp(ca, cb, sizeof ca) == 0 && memcmp(la, lb, sizeof la) == 0,
              "fit over the mapped .fvecs differs from the fit over the loaded one");
        fkm_matrix_free(&a);
        fkm_matrix_free(&b);
    }
    free(rd), free(v);
}

static void test_csv(void)
{
    const float m23[6] = {1.0f, 2.0f, 3.0f, -4.5f, 5e-3f, 6e10f};
    write_text("plain.csv", "1,2,3\n-4.5,5e-3,6e10\n");
    expect_matrix("plain.csv", FKM_F32, 2, 3, m23);
    write_text("header.csv", "x, y ,z\r\n 1 , 2,3\r\n-4.5,\t5e-3 ,6e10\r\n\r\n  \n");
    expect_matrix("header.csv", FKM_F32, 2, 3, m23);
    write_text("nonl.csv", "a,b,c\n1,2,3\n-4.5,5e-3,6e10"); /* no final newline */
    expect_matrix("nonl.csv", FKM_F32, 2, 3, m23);

    /* values are rounded from double to float */
    write_text("round.csv", "0.1,16777217\n");
    const float rounded[2] = {0.1f, 16777216.0f};
    expect_matrix("round.csv", FKM_F32, 1, 2, rounded);

    /* nan and inf are numbers to the reader (the fit rejects them), so this is no header */
    fkm_matrix m;
    write_text("nan.csv", "nan,1\ninf,-inf\n");
    if (CHECK(fkm_matrix_load(ctx, P("nan.csv"), &m) == FKM_OK, "nan.csv: %s",
              fkm_last_error(ctx))) {
        const float *v = m.data;
        CHECK(m.rows == 2 && isnan(v[0]) && v[1] == 1.0f && isinf(v[2]) && v[3] < 0,
              "nan.csv values");
        fkm_matrix_free(&m);
    }

    /* one long line: no line length limit */
    const int wide = 100000;
    char *line = malloc((size_t)wide * 3 + 2);
    float *expect = malloc((size_t)wide * sizeof(float));
    if (!line || !expect) exit(2);
    size_t len = 0;
    for (int j = 0; j < wide; j++) {
        line[len++] = (char)('0' + j % 10);
        line[len++] = j + 1 < wide ? ',' : '\n';
        expect[j] = (float)(j % 10);
    }
    line[len] = '\0';
    write_text("wide.csv", line);
    expect_matrix("wide.csv", FKM_F32, 1, wide, expect);
    free(line);
    free(expect);
}

/* ---------------------------------------------------------------- readers, bad input */

static void test_bad_npy(void)
{
    expect_load_error("missing.npy", FKM_E_IO, "missing.npy");
    fkm_matrix m;
    CHECK(fkm_matrix_load(NULL, P("missing.npy"), &m) == FKM_E_IO, "NULL ctx load");
    CHECK(fkm_matrix_load(ctx, NULL, &m) == FKM_E_NULL, "NULL path");
    CHECK(fkm_matrix_load(ctx, P("v1.npy"), NULL) == FKM_E_NULL, "NULL out");
    CHECK(mkdir(P("dir.npy"), 0755) == 0, "mkdir");
    expect_load_error("dir.npy", FKM_E_IO, NULL);

    /* the data (12 floats) against headers that say more or fewer, 2-D and 3-D, or a file
     * cut 4 bytes short */
    static const struct {
        const char *name, *dict;
        size_t cut; /* bytes missing from the data */
        const char *word;
    } sized[] = {
        {"trunc.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 4, "truncated"},
        {"lie_big.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", 0, "truncated"},
        {"lie_small.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", 0, "extra bytes"},
        {"lie3_big.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 3), }", 0, "truncated"},
        {"lie3_small.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", 0, "extra bytes"},
        {"trunc3.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2), }", 4, "truncated"},
    };
    for (size_t i = 0; i < sizeof sized / sizeof sized[0]; i++) {
        write_npy_raw(sized[i].name, 1, sized[i].dict, vals12, sizeof vals12 - sized[i].cut);
        expect_load_error(sized[i].name, FKM_E_FORMAT, sized[i].word);
    }

    static const struct {
        const char *name, *dict;
        fkm_status status;
        const char *word;
    } cases[] = {
        {"i4.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }", FKM_E_DTYPE, "<i4"},
        {"be.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }", FKM_E_DTYPE, ">f4"},
        {"u1.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4), }", FKM_E_DTYPE, "|u1"},
        {"rec.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3, 4), }",
         FKM_E_DTYPE, NULL},
        {"fort.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", FKM_E_FORMAT,
         "Fortran"},
        {"4d.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2, 1), }",
         FKM_E_FORMAT, "3-D"},
        {"0d.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", FKM_E_FORMAT, "2-D"},
        {"empty1.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", FKM_E_FORMAT,
         "empty"},
        {"ovf1.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }",
         FKM_E_OVERFLOW, NULL},
        {"lie1_big.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (13,), }", FKM_E_FORMAT,
         "truncated"},
        {"lie1_small.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (11,), }",
         FKM_E_FORMAT, "extra bytes"},
        {"i4_1d.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (12,), }", FKM_E_DTYPE,
         "<i4"},
        {"empty3_b.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3, 4), }",
         FKM_E_FORMAT, "empty"},
        {"empty3_d.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4, 0), }",
         FKM_E_FORMAT, "empty"},
        {"ovf3_bn.npy",
         "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4, 1), }",
         FKM_E_OVERFLOW, NULL},
        {"ovf3_bytes.npy",
         "{'descr': '<f8', 'fortran_order': False, 'shape': (1048576, 1048576, 2097152), }",
         FKM_E_OVERFLOW, NULL},
        {"empty_rows.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }",
         FKM_E_FORMAT, "empty"},
        {"empty_cols.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }",
         FKM_E_FORMAT, "empty"},
        {"ovf.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
         FKM_E_OVERFLOW, NULL},
        {"ovf_dim.npy",
         "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 4), }",
         FKM_E_OVERFLOW, NULL},
        {"neg.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4), }", FKM_E_FORMAT, NULL},
        {"nokey.npy", "{'descr': '<f4', 'shape': (3, 4), }", FKM_E_FORMAT, "fortran_order"},
        {"extrakey.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'x': 1}",
         FKM_E_FORMAT, "'x'"},
        {"dupkey.npy", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}",
         FKM_E_FORMAT, "duplicate"},
        {"junk.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } x", FKM_E_FORMAT,
         NULL},
        {"nodict.npy", "not a dict", FKM_E_FORMAT, NULL},
        {"unterminated.npy", "{'descr': '<f4", FKM_E_FORMAT, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_npy_raw(cases[i].name, 1, cases[i].dict, vals12, sizeof vals12);
        expect_load_error(cases[i].name, cases[i].status, cases[i].word);
    }

    ts_write_file("magic.npy", "\x93NUMPX\x01\x00\x00\x00", 10);
    expect_load_error("magic.npy", FKM_E_FORMAT, "magic");
    ts_write_file("short.npy", "\x93NUM", 4);
    expect_load_error("short.npy", FKM_E_FORMAT, NULL);
    ts_write_file("version.npy", "\x93NUMPY\x04\x00\x10\x00", 10);
    expect_load_error("version.npy", FKM_E_FORMAT, "version");
    ts_write_file("hdrhuge.npy", "\x93NUMPY\x02\x00\xff\xff\xff\x7f{}", 14);
    expect_load_error("hdrhuge.npy", FKM_E_FORMAT, "long");
    ts_write_file("hdrtrunc.npy", "\x93NUMPY\x01\x00\x40\x00{'descr'", 18);
    expect_load_error("hdrtrunc.npy", FKM_E_FORMAT, "truncated");
}

static void test_bad_other(void)
{
    const int32_t dims[3] = {4, 4, 4}, ragged[3] = {4, 3, 5}, zero[1] = {0};
    write_fvecs("trunc.fvecs", dims, 3, vals12, 4);
    expect_load_error("trunc.fvecs", FKM_E_FORMAT, NULL);
    write_fvecs("ragged.fvecs", ragged, 3, vals12, 0);
    expect_load_error("ragged.fvecs", FKM_E_FORMAT, "row 2");
    write_fvecs("zero.fvecs", zero, 1, vals12, 0);
    expect_load_error("zero.fvecs", FKM_E_FORMAT, NULL);
    ts_write_file("empty.fvecs", "", 0);
    expect_load_error("empty.fvecs", FKM_E_FORMAT, "empty");

    write_fbin("trunc.fbin", 3, 4, vals12, 11);
    expect_load_error("trunc.fbin", FKM_E_FORMAT, "truncated");
    write_fbin("lie.fbin", 2, 4, vals12, 12);
    expect_load_error("lie.fbin", FKM_E_FORMAT, "extra bytes");
    write_fbin("neg.fbin", -1, 4, vals12, 0);
    expect_load_error("neg.fbin", FKM_E_FORMAT, NULL);
    write_fbin("big.fbin", 1000, 1000, vals12, 12);
    expect_load_error("big.fbin", FKM_E_FORMAT, "truncated");
    write_fbin("huge.fbin", 2147483647, 2147483647, vals12, 12); /* 2^64 - 2^34 + 4 bytes */
    expect_load_error("huge.fbin", FKM_E_OVERFLOW, NULL);
    ts_write_file("short.fbin", "\x01\x00\x00", 3);
    expect_load_error("short.fbin", FKM_E_FORMAT, NULL);

    write_text("ragged.csv", "1,2,3\n4,5,6\n7,8\n");
    expect_load_error("ragged.csv", FKM_E_FORMAT, "line 3");
    write_text("ragged_hdr.csv", "a,b\n1,2,3\n");
    expect_load_error("ragged_hdr.csv", FKM_E_FORMAT, "line 2");
    write_text("word.csv", "1,2\n3,abc\n");
    expect_load_error("word.csv", FKM_E_FORMAT, "column 2");
    write_text("word2.csv", "1,2\n3,4x\n");
    expect_load_error("word2.csv", FKM_E_FORMAT, "line 2, column 2");
    write_text("hole.csv", "1,2,3\n4,,6\n");
    expect_load_error("hole.csv", FKM_E_FORMAT, "line 2, column 2");
    write_text("hole1.csv", "1,,3\n4,5,6\n"); /* an empty field does not make a header */
    expect_load_error("hole1.csv", FKM_E_FORMAT, "line 1, column 2");
    write_text("gap.csv", "1,2\n\n3,4\n");
    expect_load_error("gap.csv", FKM_E_FORMAT, "line 2");
    write_text("onlyhdr.csv", "a,b\n");
    expect_load_error("onlyhdr.csv", FKM_E_FORMAT, "no data");
    write_text("empty.csv", "");
    expect_load_error("empty.csv", FKM_E_FORMAT, "no data");
    ts_write_file("nul.csv", "1,2\n3\0,4\n", 9);
    expect_load_error("nul.csv", FKM_E_FORMAT, NULL);

    write_text("data.txt", "1,2\n");
    expect_load_error("data.txt", FKM_E_INVALID, "extension");
    write_text("noext", "1,2\n");
    expect_load_error("noext", FKM_E_INVALID, NULL);
}

/* ---------------------------------------------------------------- main */


int main(void)
{
    if (ts_make_dir("fkm_test_io_") != 0) return 2;
    if (fkm_create(&ctx, FKM_BACKEND_CPU) != FKM_OK) {
        fprintf(stderr, "test_io: fkm_create failed\n");
        return 2;
    }
    test_round_trip();
    test_save_errors();
    test_npy_hand();
    test_fvecs_fbin();
    test_csv();
    test_bad_npy();
    test_bad_other();
    fkm_destroy(ctx);
    return ts_finish("test_io");
}
