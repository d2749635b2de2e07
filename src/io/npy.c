/* npy.c — NumPy .npy files: reading 2-D (N, D) float matrices, 3-D (B, N, D) batches of
 * them and 1-D (N,) vectors as N x 1 matrices (format versions 1.0, 2.0, 3.0), and writing
 * matrices, batches and label arrays (version 1.0).
 *
 * A .npy file is: the magic "\x93NUMPY", a major and minor version byte, the header length
 * (uint16 for 1.x, uint32 for 2.x and 3.x, little-endian), then the header — a Python dict
 * literal {'descr': ..., 'fortran_order': ..., 'shape': (...)} padded with spaces and a final
 * '\n' — then the raw array data. */
#include "io/io_internal.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* Headers are padded so that magic + header is a multiple of this (NumPy uses 64 since 1.16
 * so that the data is aligned for any dtype and for mmap). */
enum { NPY_ALIGN = 64, NPY_MAX_DIMS = 64, NPY_DESCR_CAP = 32 };

/* A 1-D, 2-D or 3-D float array's header is under 192 bytes; NumPy itself refuses headers
 * over 10000 bytes by default. The cap keeps a corrupt length field from costing a huge
 * allocation. */
#define NPY_MAX_HEADER ((int64_t)1 << 20)

/* The element types flashkm reads and writes. The first entry of a dtype is what the
 * writers use; bf16 has no NumPy type of its own: ml_dtypes' bfloat16 is saved as a
 * 2-byte void type, which NumPy spells '<V2' or '|V2'. */
static const struct {
    const char *descr;
    fkm_dtype dtype;
} npy_dtypes[] = {
    {"<f4", FKM_F32}, {"<f2", FKM_F16}, {"<f8", FKM_F64}, {"<V2", FKM_BF16}, {"|V2", FKM_BF16},
};

static const char *descr_of_dtype(fkm_dtype dtype)
{
    for (size_t i = 0; i < sizeof npy_dtypes / sizeof npy_dtypes[0]; i++)
        if (npy_dtypes[i].dtype == dtype) return npy_dtypes[i].descr;
    return NULL;
}

static bool dtype_of_descr(const char *descr, fkm_dtype *dtype)
{
    for (size_t i = 0; i < sizeof npy_dtypes / sizeof npy_dtypes[0]; i++) {
        if (strcmp(npy_dtypes[i].descr, descr) == 0) {
            *dtype = npy_dtypes[i].dtype;
            return true;
        }
    }
    return false;
}

/* ================================================================ header parsing */

typedef struct npy_header {
    char descr[NPY_DESCR_CAP];
    bool fortran_order;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
} npy_header;

/* A cursor over the header text, with what a parse error message needs. */
typedef struct parser {
    const char *p, *end;
    fkm_ctx *ctx;
    const char *path;
} parser;

static fkm_status bad_header(parser *ps, const char *what)
{
    return fkm_fail(ps->ctx, FKM_E_FORMAT, "%s: malformed .npy header: %s", ps->path, what);
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' ||
                               *ps->p == '\r'))
        ps->p++;
}

/* Skips whitespace, then consumes c if it is next. */
static bool accept(parser *ps, char c)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return true;
    }
    return false;
}

static bool accept_word(parser *ps, const char *word)
{
    size_t n = strlen(word);
    skip_ws(ps);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0) {
        ps->p += n;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes (keys and dtype strings never need them), copied
 * into buf; a string that does not fit is reported as too long. */
static fkm_status parse_string(parser *ps, char *buf, size_t cap)
{
    skip_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
        return bad_header(ps, "expected a quoted string");
    char quote = *ps->p++;
    const char *start = ps->p;
    while (ps->p < ps->end && *ps->p != quote && *ps->p != '\\') ps->p++;
    if (ps->p >= ps->end || *ps->p != quote) return bad_header(ps, "unterminated string");
    size_t n = (size_t)(ps->p - start);
    ps->p++;
    if (n >= cap) return bad_header(ps, "string too long");
    memcpy(buf, start, n);
    buf[n] = '\0';
    return FKM_OK;
}

static fkm_status parse_descr(parser *ps, npy_header *h)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '[')
        return fkm_fail(ps->ctx, FKM_E_DTYPE,
                        "%s: structured dtype not supported (need '<f4', '<f2', '<f8' or '<V2')",
                        ps->path);
    return parse_string(ps, h->descr, sizeof h->descr);
}

static fkm_status parse_bool(parser *ps, bool *out)
{
    if (accept_word(ps, "True")) {
        *out = true;
    } else if (accept_word(ps, "False")) {
        *out = false;
    } else {
        return bad_header(ps, "fortran_order must be True or False");
    }
    return FKM_OK;
}

/* A non-negative decimal integer; Python 2 era files may carry an 'L' suffix. */
static fkm_status parse_dim(parser *ps, int64_t *out)
{
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return bad_header(ps, "shape entries must be non-negative integers");
    int64_t v = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        int digit = *ps->p++ - '0';
        if (v > (INT64_MAX - digit) / 10)
            return fkm_fail(ps->ctx, FKM_E_OVERFLOW, "%s: .npy shape entry does not fit in 64 bits",
                            ps->path);
        v = v * 10 + digit;
    }
    if (ps->p < ps->end && (*ps->p == 'L' || *ps->p == 'l')) ps->p++;
    *out = v;
    return FKM_OK;
}

/* A tuple of integers: (), (n,), (n, m), with an optional trailing comma. */
static fkm_status parse_shape(parser *ps, npy_header *h)
{
    if (!accept(ps, '(')) return bad_header(ps, "shape must be a tuple");
    h->ndim = 0;
    while (!accept(ps, ')')) {
        if (h->ndim == NPY_MAX_DIMS) return bad_header(ps, "too many dimensions");
        fkm_status s = parse_dim(ps, &h->shape[h->ndim++]);
        if (s != FKM_OK) return s;
        if (!accept(ps, ',')) {
            if (!accept(ps, ')')) return bad_header(ps, "expected ',' or ')' in shape");
            break;
        }
    }
    return FKM_OK;
}

/* The dict: exactly the keys descr, fortran_order and shape, in any order, each once (as
 * NumPy requires), with any whitespace and an optional trailing comma. */
static fkm_status parse_header(parser *ps, npy_header *h)
{
    enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4, KEY_ALL = 7 };
    unsigned seen = 0;
    if (!accept(ps, '{')) return bad_header(ps, "expected '{'");
    while (!accept(ps, '}')) {
        char key[32];
        fkm_status s = parse_string(ps, key, sizeof key);
        if (s != FKM_OK) return s;
        if (!accept(ps, ':')) return bad_header(ps, "expected ':' after a key");
        unsigned bit;
        if (strcmp(key, "descr") == 0) {
            bit = KEY_DESCR;
            s = parse_descr(ps, h);
        } else if (strcmp(key, "fortran_order") == 0) {
            bit = KEY_FORTRAN;
            s = parse_bool(ps, &h->fortran_order);
        } else if (strcmp(key, "shape") == 0) {
            bit = KEY_SHAPE;
            s = parse_shape(ps, h);
        } else {
            return fkm_fail(ps->ctx, FKM_E_FORMAT, "%s: malformed .npy header: unexpected key '%s'",
                            ps->path, key);
        }
        if (s != FKM_OK) return s;
        if (seen & bit)
            return fkm_fail(ps->ctx, FKM_E_FORMAT, "%s: malformed .npy header: duplicate key '%s'",
                            ps->path, key);
        seen |= bit;
        if (!accept(ps, ',')) {
            if (!accept(ps, '}')) return bad_header(ps, "expected ',' or '}'");
            break;
        }
    }
    skip_ws(ps); /* the padding */
    if (ps->p != ps->end) return bad_header(ps, "unexpected text after the dict");
    if (seen != KEY_ALL)
        return bad_header(ps, !(seen & KEY_DESCR)     ? "missing key 'descr'"
                              : !(seen & KEY_SHAPE)   ? "missing key 'shape'"
                                                      : "missing key 'fortran_order'");
    return FKM_OK;
}

/* ================================================================ reading */

/* Reads the magic, version and header; on success *data_offset is where the array starts. */
static fkm_status read_header(fkm_ctx *ctx, const char *path, FILE *f, int64_t file_size,
                              npy_header *h, int64_t *data_offset)
{
    unsigned char pre[12];
    if (file_size < 10)
        return fkm_fail(ctx, FKM_E_FORMAT, "%s: too short to be a .npy file", path);
    fkm_status s = fkm_read_exact(ctx, f, path, pre, 10);
    if (s != FKM_OK) return s;
    if (memcmp(pre, npy_magic, sizeof npy_magic) != 0)
        return fkm_fail(ctx, FKM_E_FORMAT, "%s: not a .npy file (bad magic)", path);
    int major = pre[6], minor = pre[7];
    int64_t header_len, prelude;
    if (major == 1) {
        prelude = 10;
        header_len = fkm_le16(pre + 8);
    } else if (major == 2 || major == 3) { /* 3.0 only changes the header's text encoding */
        prelude = 12;
        if (file_size < prelude)
            return fkm_fail(ctx, FKM_E_FORMAT, "%s: truncated .npy header", path);
        s = fkm_read_exact(ctx, f, path, pre + 10, 2);
        if (s != FKM_OK) return s;
        header_len = fkm_le32(pre + 8);
    } else {
        return fkm_fail(ctx, FKM_E_FORMAT, "%s: unsupported .npy format version %d.%d", path,
                        major, minor);
    }
    if (header_len > NPY_MAX_HEADER)
        return fkm_fail(ctx, FKM_E_FORMAT,
                        "%s: .npy header of %" PRId64 " bytes is implausibly long",
                        path, header_len);
    if (header_len > file_size - prelude)
        return fkm_fail(ctx, FKM_E_FORMAT,
                        "%s: truncated .npy header: it declares %" PRId64
                        " bytes, file has %" PRId64,
                        path, header_len, file_size - prelude);

    char *text = malloc(header_len > 0 ? (size_t)header_len : 1);
    if (!text) return fkm_fail(ctx, FKM_E_NOMEM, "%s: out of memory for the .npy header", path);
    s = fkm_read_exact(ctx, f, path, text, (size_t)header_len);
    if (s == FKM_OK) {
        parser ps = {text, text + header_len, ctx, path};
        s = parse_header(&ps, h);
    }
    free(text);
    *data_offset = prelude + header_len;
    return s;
}

/* Writes "(a, b, c)" into buf (Python's tuple spelling, used in messages and headers). */
static void format_shape(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, ndim == 1 ? ",)" : ")");
}

/* Checks what the header says against what flashkm reads and against the real file size;
 * on success sets the matrix's dtype and size and *data_bytes. A 2-D (N, D) array is a
 * batch of 1; a 3-D (B, N, D) array is read as B*N rows of D (C order keeps each problem's
 * N rows together); a 1-D (N,) array (a vector, such as per-point weights) is read as an
 * N x 1 matrix. */
static fkm_status check_header(fkm_ctx *ctx, const char *path, const npy_header *h,
                               int64_t data_avail, fkm_matrix *m, size_t *data_bytes)
{
    char shape[96];
    format_shape(shape, sizeof shape, h->shape, h->ndim);
    if (!dtype_of_descr(h->descr, &m->dtype))
        return fkm_fail(ctx, FKM_E_DTYPE,
                        "%s: unsupported .npy dtype '%s' (need '<f4', '<f2', '<f8' or '<V2' for "
                        "bfloat16)", path, h->descr);
    if (h->fortran_order)
        return fkm_fail(ctx, FKM_E_FORMAT,
                        "%s: Fortran order not supported (save a C-contiguous array)", path);
    if (h->ndim < 1 || h->ndim > 3)
        return fkm_fail(ctx, FKM_E_FORMAT,
                        "%s: expected a 2-D (N, D), 3-D (B, N, D) or 1-D (N,) array, got %d-D "
                        "shape %s", path, h->ndim, shape);
    for (int i = 0; i < h->ndim; i++)
        if (h->shape[i] == 0)
            return fkm_fail(ctx, FKM_E_FORMAT, "%s: empty array of shape %s", path, shape);
    const int64_t batch = h->ndim == 3 ? h->shape[0] : 1;
    const int64_t n = h->ndim == 1 ? h->shape[0] : h->shape[h->ndim - 2];
    const int64_t d = h->ndim == 1 ? 1 : h->shape[h->ndim - 1];
    int64_t rows;
    size_t bytes;
    if (!fkm_mul_i64(batch, n, &rows) || !fkm_bytes(rows, d, fkm_dtype_size(m->dtype), &bytes) ||
        bytes > (uint64_t)INT64_MAX)
        return fkm_fail(ctx, FKM_E_OVERFLOW, "%s: shape %s of '%s' overflows 64-bit sizes", path,
                        shape, h->descr);
    char says[160];
    snprintf(says, sizeof says, "shape %s of '%s'", shape, h->descr);
    fkm_status s = fkm_check_data_size(ctx, path, says, (int64_t)bytes, data_avail);
    if (s != FKM_OK) return s;
    m->rows = rows;
    m->cols = d;
    m->batch = batch;
    *data_bytes = bytes;
    return FKM_OK;
}

fkm_status fkm_load_npy(fkm_ctx *ctx, const char *path, FILE *f, int64_t file_size, int map,
                        fkm_matrix *out)
{
    npy_header h;
    int64_t offset = 0;
    fkm_status s = read_header(ctx, path, f, file_size, &h, &offset);
    if (s != FKM_OK) return s;
    fkm_matrix m = {0};
    size_t bytes = 0;
    s = check_header(ctx, path, &h, file_size - offset, &m, &bytes);
    if (s != FKM_OK) return s;
    m.ld = m.cols;
    if (map) {
        if ((s = fkm_map_file(ctx, path, f, file_size, offset, &m)) == FKM_OK) *out = m;
        return s;
    }
    m.data = malloc(bytes);
    if (!m.data)
        return fkm_fail(ctx, FKM_E_NOMEM, "%s: out of memory for %zu bytes of data", path, bytes);
    s = fkm_read_exact(ctx, f, path, m.data, bytes);
    if (s != FKM_OK) {
        free(m.data);
        return s;
    }
    *out = m;
    return FKM_OK;
}

/* ================================================================ writing */

/* Magic, version 1.0, length and the padded header text of one array. The longest header
 * written (three 19-digit dims) is about 120 bytes, so 256 always holds it with its padding. */
typedef struct npy_prefix {
    unsigned char bytes[256];
    size_t len;
} npy_prefix;

static void build_prefix(npy_prefix *pre, const char *descr, const int64_t *shape, int ndim)
{
    char shape_text[96];
    format_shape(shape_text, sizeof shape_text, shape, ndim);
    char dict[192];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape_text);
    /* pad with spaces so that 10 + header (which ends in '\n') is a multiple of NPY_ALIGN */
    size_t total = ((size_t)(10 + n + 1) + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    size_t header_len = total - 10;
    memcpy(pre->bytes, npy_magic, sizeof npy_magic);
    pre->bytes[6] = 1;
    pre->bytes[7] = 0;
    pre->bytes[8] = (unsigned char)(header_len & 0xff);
    pre->bytes[9] = (unsigned char)(header_len >> 8);
    memcpy(pre->bytes + 10, dict, (size_t)n);
    memset(pre->bytes + 10 + n, ' ', header_len - (size_t)n - 1);
    pre->bytes[total - 1] = '\n';
    pre->len = total;
}

typedef struct npy_payload {
    npy_prefix prefix;
    const void *data;
    size_t bytes;
} npy_payload;

static fkm_status write_npy(fkm_ctx *ctx, FILE *f, const char *path, const void *user)
{
    const npy_payload *pl = user;
    fkm_status s = fkm_write_exact(ctx, f, path, pl->prefix.bytes, pl->prefix.len);
    if (s != FKM_OK) return s;
    return fkm_write_exact(ctx, f, path, pl->data, pl->bytes);
}

/* The one path of every public writer: checks the arguments (fn names the public function,
 * data_name the data argument and dim_names the shape's entries, for messages; descr NULL
 * means `dtype` is unknown), the size, then writes atomically. ndim is 1 to 3. */
static fkm_status save_array(fkm_ctx *ctx, const char *fn, const char *path, const void *data,
                             const char *data_name, const char *descr, int dtype, size_t elem,
                             const int64_t *shape, const char *const *dim_names, int ndim)
{
    fkm_clear_error(ctx);
    if (!path || !data)
        return fkm_fail(ctx, FKM_E_NULL, "%s: %s is NULL", fn, !path ? "path" : data_name);
    if (!descr) return fkm_fail(ctx, FKM_E_DTYPE, "%s: unknown dtype %d", fn, dtype);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0)
            return fkm_fail(ctx, FKM_E_INVALID, "%s: %s = %" PRId64 " must be >= 1", fn,
                            dim_names[i], shape[i]);
    int64_t count = 1;
    npy_payload pl;
    for (int i = 0; i < ndim; i++) {
        if (!fkm_mul_i64(count, shape[i], &count)) {
            count = -1;
            break;
        }
    }
    char shape_text[96];
    format_shape(shape_text, sizeof shape_text, shape, ndim);
    if (count < 0 || !fkm_bytes(count, 1, elem, &pl.bytes))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "%s: %s: shape %s of %zu-byte elements overflows",
                        fn, path, shape_text, elem);
    build_prefix(&pl.prefix, descr, shape, ndim);
    pl.data = data;
    return fkm_atomic_write(ctx, path, write_npy, &pl);
}

/* save_array for a float array of a flashkm dtype. */
static fkm_status save_float_array(fkm_ctx *ctx, const char *fn, const char *path,
                                   const void *data, fkm_dtype dtype, const int64_t *shape,
                                   const char *const *dim_names, int ndim)
{
    return save_array(ctx, fn, path, data, "data", descr_of_dtype(dtype), (int)dtype,
                      fkm_dtype_size(dtype), shape, dim_names, ndim);
}

fkm_status fkm_npy_save_matrix(fkm_ctx *ctx, const char *path, const void *data,
                               fkm_dtype dtype, int64_t rows, int64_t cols)
{
    static const char *const names[] = {"rows", "cols"};
    const int64_t shape[2] = {rows, cols};
    return save_float_array(ctx, "fkm_npy_save_matrix", path, data, dtype, shape, names, 2);
}

fkm_status fkm_npy_save_batch(fkm_ctx *ctx, const char *path, const void *data, fkm_dtype dtype,
                              int64_t batch, int64_t rows, int64_t cols)
{
    static const char *const names[] = {"batch", "rows", "cols"};
    const int64_t shape[3] = {batch, rows, cols};
    return save_float_array(ctx, "fkm_npy_save_batch", path, data, dtype, shape, names, 3);
}

fkm_status fkm_npy_save_labels(fkm_ctx *ctx, const char *path, const int32_t *labels, int64_t n)
{
    static const char *const names[] = {"n"};
    const int64_t shape[1] = {n};
    return save_array(ctx, "fkm_npy_save_labels", path, labels, "labels", "<i4", 0,
                      sizeof(int32_t), shape, names, 1);
}

fkm_status fkm_npy_save_labels_batch(fkm_ctx *ctx, const char *path, const int32_t *labels,
                                     int64_t batch, int64_t n)
{
    static const char *const names[] = {"batch", "n"};
    const int64_t shape[2] = {batch, n};
    return save_array(ctx, "fkm_npy_save_labels_batch", path, labels, "labels", "<i4",
                      0, sizeof(int32_t), shape, names, 2);
}
