/* io_internal.h — what the file readers and writers of src/io share: checked reads and
 * writes, the per-format loaders, and the atomic-write helper. */
#ifndef FKM_IO_INTERNAL_H
#define FKM_IO_INTERNAL_H

#include "core/internal.h"

#include <stdint.h>
#include <stdio.h>

/* Every format flashkm reads or writes is little-endian, and the readers hand the file's
 * bytes to the caller as they are. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "flashkm's file i/o assumes a little-endian host"
#endif

/* ---------------------------------------------------------------- reading */

/* A reader for one format. f is open at offset 0 on a regular file of file_size bytes;
 * path is only used in messages. With map set, a format that can maps the file read-only
 * instead of reading it (fkm_map_file). On success *out owns a rows x cols matrix with its
 * batch and ld set; on failure nothing is allocated and *out is untouched. */
typedef fkm_status (*fkm_loader_fn)(fkm_ctx *ctx, const char *path, FILE *f,
                                    int64_t file_size, int map, fkm_matrix *out);

fkm_status fkm_load_npy(fkm_ctx *ctx, const char *path, FILE *f, int64_t file_size, int map,
                        fkm_matrix *out);

/* Maps the whole file read-only into m (map_base, map_len) and points m->data at offset. */
fkm_status fkm_map_file(fkm_ctx *ctx, const char *path, FILE *f, int64_t file_size, int64_t offset,
                        fkm_matrix *m);

/* Reads exactly n bytes or fails: FKM_E_IO on a read error, and also when the file ends
 * early (the readers check sizes against fstat first, so an early end means the file
 * changed under us). */
fkm_status fkm_read_exact(fkm_ctx *ctx, FILE *f, const char *path, void *buf, size_t n);

/* Compares the data size a header promises (`expected` bytes; header_says describes it, e.g.
 * "shape (3, 4) of '<f4'") with the bytes the file really has after its header (`avail`):
 * FKM_OK when equal, else FKM_E_FORMAT saying whether the file is truncated or too long. */
fkm_status fkm_check_data_size(fkm_ctx *ctx, const char *path, const char *header_says,
                               int64_t expected, int64_t avail);

/* Little-endian integers from a byte buffer (headers are read as bytes, not structs). */
uint16_t fkm_le16(const unsigned char *p);
uint32_t fkm_le32(const unsigned char *p);

/* ---------------------------------------------------------------- writing */

/* Writes the whole content of a file to f; path (the final name) is for messages. */
typedef fkm_status (*fkm_write_fn)(fkm_ctx *ctx, FILE *f, const char *path, const void *user);

/* Creates path atomically: runs write_fn on a temporary file in the same directory, flushes
 * and fsyncs it, then renames it onto path. On any failure the temporary file is removed,
 * path is left as it was, and FKM_E_IO (or write_fn's status) is returned. */
fkm_status fkm_atomic_write(fkm_ctx *ctx, const char *path, fkm_write_fn write_fn,
                            const void *user);

/* fwrite of n bytes or FKM_E_IO naming path. */
fkm_status fkm_write_exact(fkm_ctx *ctx, FILE *f, const char *path, const void *buf, size_t n);

#endif
