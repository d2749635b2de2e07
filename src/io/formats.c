/* formats.c — fkm_matrix_load: picks a reader by file extension, and the readers for .fvecs,
 * .fbin and .csv (.npy lives in npy.c), plus the checked-read helpers they share. */
#define _POSIX_C_SOURCE 200809L

#include "io/io_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ================================================================ shared helpers */

uint16_t fkm_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t fkm_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

fkm_status fkm_read_exact(fkm_ctx *ctx, FILE *f, const char *path, void *buf, size_t n)
{
    if (n == 0 || fread(buf, 1, n, f) == n) return FKM_OK;
    if (ferror(f)) return fkm_fail(ctx, FKM_E_IO, "%s: read error: %s", path, strerror(errno));
    return fkm_fail(ctx, FKM_E_IO, "%s: unexpected end of file (did it change while read?)", path);
}

fkm_status fkm_check_data_size(fkm_ctx *ctx, const char *path, const char *header_says,
                               int64_t expected, int64_t avail)
{
    if (expected > avail)
        return fkm_fail(ctx, FKM_E_FORMAT,
                        "%s: truncated: expected %" PRId64 " bytes of data, file has %" PRId64,
                        path, expected, avail);
    if (expected < avail)
        return fkm_fail(ctx, FKM_E_FORMAT,
                        "%s: header says %s (%" PRId64 " bytes of data) but file has %" PRId64
                        " extra bytes", path, header_says, expected, avail - expected);
    return FKM_OK;
}

/* n f32 elements as a byte count, or FKM_E_OVERFLOW. */
static fkm_status f32_bytes(fkm_ctx *ctx, const char *path, int64_t rows, int64_t cols,
                            size_t *bytes)
{
    if (!fkm_bytes(rows, cols, sizeof(float), bytes) || *bytes > (uint64_t)INT64_MAX)
        return fkm_fail(ctx, FKM_E_OVERFLOW,
                        "%s: %" PRId64 " x %" PRId64 " floats overflow 64-bit sizes",
                        path, rows, cols);
    return FKM_OK;
}

static fkm_status alloc_f32(fkm_ctx *ctx, const char *path, fkm_matrix *m, size_t bytes)
{
    m->dtype = FKM_F32;
    m->data = malloc(bytes ? bytes : 1);
    if (!m->data)
        return fkm_fail(ctx, FKM_E_NOMEM, "%s: out of memory for %zu bytes of data", path, bytes);
    return FKM_OK;
}

/* ================================================================ .fvecs */

/* The int32 that starts row i (0-based), which must repeat row 1's d. */
static fkm_status read_fvecs_dim(fkm_ctx *ctx, const char *path, FILE *f, int64_t i, int32_t d)
{
    unsigned char word[4];
    fkm_status s = fkm_read_exact(ctx, f, path, word, 4);
    if (s != FKM_OK) return s;
    int32_t di = (int32_t)fkm_le32(word);
    if (di != d)
        return fkm_fail(ctx, FKM_E_FORMAT, "%s: row %" PRId64 " has dimension %" PRId32
                        ", row 1 has %" PRId32, path, i + 1, di, d);
    return FKM_OK;
}

/* Each row: int32 d, then d float32. d is the same on every row. */
static fkm_status load_fvecs(fkm_ctx *ctx, const char *path, FILE *f, int64_t file_size, int map,
                             fkm_matrix *out)
{
    if (file_size < 4)
        return fkm_fail(ctx, FKM_E_FORMAT, "%s: %s .fvecs file", path,
                        file_size == 0 ? "empty" : "truncated");
    unsigned char word[4];
    fkm_status s = fkm_read_exact(ctx, f, path, word, 4);
    if (s != FKM_OK) return s;
    int32_t d = (int32_t)fkm_le32(word);
    if (d <= 0)
        return fkm_fail(ctx, FKM_E_FORMAT, "%s: row 1 has dimension %" PRId32 ", must be > 0",
                        path, d);
    int64_t row_bytes = 4 * ((int64_t)d + 1);
    if (file_size % row_bytes != 0)
        return fkm_fail(ctx, FKM_E_FORMAT,
                        "%s: file size %" PRId64 " is not a multiple of the row size %" PRId64
                        " (d = %" PRId32 " from row 1): truncated, or rows of different d",
                        path, file_size, row_bytes, d);

    fkm_matrix m = {0};
    m.batch = 1;
    m.rows = file_size / row_bytes;
    m.cols = d;
    m.ld = d;
    size_t bytes;
    if ((s = f32_bytes(ctx, path, m.rows, m.cols, &bytes)) != FKM_OK) return s;
    if (map) { /* the rows stay where they are, with their dimension words between them */
        if ((s = fkm_map_file(ctx, path, f, file_size, 4, &m)) != FKM_OK) return s;
        m.ld = (int64_t)d + 1;
        const unsigned char *base = m.map_base;
        for (int64_t i = 1; i < m.rows; i++) {
            const int32_t di = (int32_t)fkm_le32(base + i * row_bytes);
            if (di != d) {
                fkm_matrix_free(&m);
                return fkm_fail(ctx, FKM_E_FORMAT, "%s: row %" PRId64 " has dimension %" PRId32
                                ", row 1 has %" PRId32, path, i + 1, di, d);
            }
        }
        *out = m;
        return FKM_OK;
    }
    if ((s = alloc_f32(ctx, path, &m, bytes)) != FKM_OK) return s;
    float *dst = m.data;
    for (int64_t i = 0; i < m.rows && s == FKM_OK; i++) {
        if (i > 0) s = read_fvecs_dim(ctx, path, f, i, d);
        if (s == FKM_OK) s = fkm_read_exact(ctx, f, path, dst + i * d, (size_t)d * sizeof(float));
    }
    if (s != FKM_OK) {
        free(m.data);
        return s;
    }
    *out = m;
    return FKM_OK;
}

/* ================================================================ .fbin */

/* int32 n, int32 d, then n*d float32 (the big-ann-benchmarks layout). */
static fkm_status load_fbin(fkm_ctx *ctx, const char *path, FILE *f, int64_t file_size, int map,
                            fkm_matrix *out)
{
    if (file_size < 8)
        return fkm_fail(ctx, FKM_E_FORMAT, "%s: too short to be .fbin (8-byte header)", path);
    unsigned char head[8];
    fkm_status s = fkm_read_exact(ctx, f, path, head, sizeof head);
    if (s != FKM_OK) return s;
    int32_t n = (int32_t)fkm_le32(head), d = (int32_t)fkm_le32(head + 4);
    if (n <= 0 || d <= 0)
        return fkm_fail(ctx, FKM_E_FORMAT, "%s: header says n = %" PRId32 ", d = %" PRId32
                        "; both must be > 0", path, n, d);
    fkm_matrix m = {0};
    m.batch = 1;
    m.rows = n;
    m.cols = d;
    size_t bytes;
    if ((s = f32_bytes(ctx, path, n, d, &bytes)) != FKM_OK) return s;
    char says[64];
    snprintf(says, sizeof says, "n = %" PRId32 ", d = %" PRId32, n, d);
    if ((s = fkm_check_data_size(ctx, path, says, (int64_t)bytes, file_size - 8)) != FKM_OK)
        return s;
    m.ld = d;
    if (map) {
        if ((s = fkm_map_file(ctx, path, f, file_size, 8, &m)) == FKM_OK) *out = m;
        return s;
    }
    if ((s = alloc_f32(ctx, path, &m, bytes)) != FKM_OK) return s;
    if ((s = fkm_read_exact(ctx, f, path, m.data, bytes)) != FKM_OK) {
        free(m.data);
        return s;
    }
    *out = m;
    return FKM_OK;
}

/* ================================================================ .csv */

/* The values read so far, growing geometrically: the number of rows is not known upfront. */
typedef struct csv_state {
    fkm_ctx *ctx;
    const char *path;
    float *v;
    int64_t len, cap;
    int64_t line_no;      /* 1-based line being parsed */
    int64_t cols;         /* fields per data row, -1 until the first data row */
    int64_t header_cols;  /* fields of the header line, -1 without header */
    int64_t header_line;
} csv_state;

static fkm_status csv_push(csv_state *st, double x)
{
    if (st->len == st->cap) {
        int64_t cap = st->cap ? st->cap * 2 : 4096;
        size_t bytes;
        if (cap < st->cap || !fkm_bytes(cap, 1, sizeof(float), &bytes))
            return fkm_fail(st->ctx, FKM_E_OVERFLOW, "%s: too many values", st->path);
        float *v = realloc(st->v, bytes);
        if (!v) return fkm_fail(st->ctx, FKM_E_NOMEM, "%s: out of memory at line %" PRId64,
                                st->path, st->line_no);
        st->v = v;
        st->cap = cap;
    }
    st->v[st->len++] = (float)x; /* out-of-range values become inf; the fit rejects them */
    return FKM_OK;
}

static bool is_blank_char(char c)
{
    return c == ' ' || c == '\t';
}

/* The field starting at s, trimmed: [*b, *e). Returns where the next field starts, or NULL
 * after the last field. */
static const char *next_field(const char *s, const char **b, const char **e)
{
    const char *end = strchr(s, ',');
    const char *stop = end ? end : s + strlen(s);
    while (s < stop && is_blank_char(*s)) s++;
    while (stop > s && is_blank_char(stop[-1])) stop--;
    *b = s;
    *e = stop;
    return end ? end + 1 : NULL;
}

/* Whether [b, e) is a whole number as strtod reads it (so "nan" and "inf" are numbers). It
 * cannot run past e: a field ends at ',', a blank or the end of the line, none of which can
 * continue a number. */
static bool parse_number(const char *b, const char *e, double *out)
{
    if (b == e) return false;
    char *end;
    *out = strtod(b, &end);
    return end == e;
}

/* A first line with any non-empty field that is not a number is a header. */
static bool is_header(const char *line, int64_t *fields)
{
    bool header = false;
    const char *b, *e;
    *fields = 0;
    for (const char *s = line; s; (*fields)++) {
        double x;
        s = next_field(s, &b, &e);
        if (b != e && !parse_number(b, e, &x)) header = true;
    }
    return header;
}

static fkm_status csv_row(csv_state *st, const char *line)
{
    int64_t col = 0;
    const char *b, *e;
    for (const char *s = line; s;) {
        double x;
        s = next_field(s, &b, &e);
        col++;
        if (b == e)
            return fkm_fail(st->ctx, FKM_E_FORMAT, "%s: line %" PRId64 ", column %" PRId64
                            ": empty field", st->path, st->line_no, col);
        if (!parse_number(b, e, &x))
            return fkm_fail(st->ctx, FKM_E_FORMAT, "%s: line %" PRId64 ", column %" PRId64
                            ": '%.*s' is not a number", st->path, st->line_no, col,
                            (int)(e - b > 40 ? 40 : e - b), b);
        fkm_status s2 = csv_push(st, x);
        if (s2 != FKM_OK) return s2;
    }
    if (st->cols < 0) {
        st->cols = col;
        if (st->header_cols >= 0 && st->header_cols != col)
            return fkm_fail(st->ctx, FKM_E_FORMAT, "%s: the header (line %" PRId64 ") has %" PRId64
                            " fields but line %" PRId64 " has %" PRId64, st->path,
                            st->header_line, st->header_cols, st->line_no, col);
    } else if (col != st->cols) {
        return fkm_fail(st->ctx, FKM_E_FORMAT, "%s: line %" PRId64 " has %" PRId64
                        " fields, earlier rows have %" PRId64, st->path, st->line_no, col,
                        st->cols);
    }
    return FKM_OK;
}

/* Strips "\n", "\r\n" (and stray '\r') from the end; true if nothing but blanks remain. */
static bool chomp_is_blank(char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (!is_blank_char(line[i])) return false;
    return true;
}

/* Reads line by line (getline: no limit on line length), so memory is the values plus one
 * line. Blank lines are allowed only at the end of the file. */
static fkm_status csv_lines(csv_state *st, FILE *f)
{
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    int64_t blank_line = 0; /* first blank line seen, 0 = none yet */
    fkm_status s = FKM_OK;
    while (s == FKM_OK && (len = getline(&line, &line_cap, f)) >= 0) {
        st->line_no++;
        if (strlen(line) != (size_t)len) {
            s = fkm_fail(st->ctx, FKM_E_FORMAT, "%s: line %" PRId64 " contains a NUL byte "
                         "(not a text file?)", st->path, st->line_no);
        } else if (chomp_is_blank(line, (size_t)len)) {
            if (!blank_line) blank_line = st->line_no;
        } else if (blank_line) {
            s = fkm_fail(st->ctx, FKM_E_FORMAT, "%s: line %" PRId64 " is blank (blank lines are "
                         "only allowed at the end)", st->path, blank_line);
        } else if (st->line_no == 1 && is_header(line, &st->header_cols)) {
            st->header_line = 1;
        } else {
            if (st->line_no == 1) st->header_cols = -1;
            s = csv_row(st, line);
        }
    }
    if (s == FKM_OK && ferror(f))
        s = fkm_fail(st->ctx, FKM_E_IO, "%s: read error: %s", st->path, strerror(errno));
    free(line);
    return s;
}

static fkm_status load_csv(fkm_ctx *ctx, const char *path, FILE *f, int64_t file_size, int map,
                           fkm_matrix *out)
{
    (void)map; /* text: always read */
    (void)file_size;
    csv_state st = {ctx, path, NULL, 0, 0, 0, -1, -1, 0};
    fkm_status s = csv_lines(&st, f);
    if (s == FKM_OK && st.len == 0)
        s = fkm_fail(ctx, FKM_E_FORMAT, "%s: no data rows", path);
    if (s != FKM_OK) {
        free(st.v);
        return s;
    }
    float *shrunk = realloc(st.v, (size_t)st.len * sizeof(float));
    out->data = shrunk ? shrunk : st.v; /* keeping the larger block is fine */
    out->dtype = FKM_F32;
    out->rows = st.len / st.cols;
    out->cols = st.cols;
    out->batch = 1;
    return FKM_OK;
}

/* ================================================================ dispatch */

static const struct {
    const char *ext;
    fkm_loader_fn load;
} loaders[] = {
    {".npy", fkm_load_npy},
    {".fvecs", load_fvecs},
    {".fbin", load_fbin},
    {".csv", load_csv},
};

static fkm_loader_fn loader_for(const char *path)
{
    const char *base = strrchr(path, '/');
    const char *dot = strrchr(base ? base + 1 : path, '.');
    if (!dot) return NULL;
    for (size_t i = 0; i < sizeof loaders / sizeof loaders[0]; i++)
        if (strcasecmp(dot, loaders[i].ext) == 0) return loaders[i].load;
    return NULL;
}

fkm_status fkm_map_file(fkm_ctx *ctx, const char *path, FILE *f, int64_t file_size, int64_t offset,
                        fkm_matrix *m)
{
    void *base = mmap(NULL, (size_t)file_size, PROT_READ, MAP_PRIVATE, fileno(f), 0);
    if (base == MAP_FAILED) return fkm_fail(ctx, FKM_E_IO, "%s: cannot map: %s", path, strerror(errno));
    m->map_base = base;
    m->map_len = (uint64_t)file_size;
    m->data = (unsigned char *)base + offset;
    return FKM_OK;
}

static fkm_status open_matrix(fkm_ctx *ctx, const char *path, int map, fkm_matrix *out, const char *fn)
{
    fkm_clear_error(ctx);
    if (!path || !out) return fkm_fail(ctx, FKM_E_NULL, "%s: %s is NULL", fn, !path ? "path" : "out");
    memset(out, 0, sizeof *out);
    fkm_loader_fn load = loader_for(path);
    if (!load)
        return fkm_fail(ctx, FKM_E_INVALID, "%s: unknown file extension (expected .npy, .fvecs, "
                        ".fbin or .csv)", path);

    FILE *f = fopen(path, "rb");
    if (!f) return fkm_fail(ctx, FKM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    fkm_status s;
    if (fstat(fileno(f), &st) != 0)
        s = fkm_fail(ctx, FKM_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = fkm_fail(ctx, FKM_E_IO, "%s: not a regular file", path);
    else
        s = load(ctx, path, f, (int64_t)st.st_size, map, out);
    fclose(f); /* read-only: a failing close loses nothing (a mapping outlives it) */
    if (s == FKM_OK && out->ld == 0) out->ld = out->cols;
    return s;
}

fkm_status fkm_matrix_load(fkm_ctx *ctx, const char *path, fkm_matrix *out)
{
    return open_matrix(ctx, path, 0, out, "fkm_matrix_load");
}

fkm_status fkm_matrix_map(fkm_ctx *ctx, const char *path, fkm_matrix *out)
{
    return open_matrix(ctx, path, 1, out, "fkm_matrix_map");
}

void fkm_matrix_free(fkm_matrix *m)
{
    if (!m) return;
    if (m->map_base) munmap(m->map_base, (size_t)m->map_len);
    else free(m->data);
    memset(m, 0, sizeof *m);
}
