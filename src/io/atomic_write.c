/* atomic_write.c — create a file so that readers see either the old file or the complete new
 * one, never a partial write: temporary file in the same directory, fsync, rename. */
#define _POSIX_C_SOURCE 200809L

#include "io/io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char tmp_suffix[] = ".tmp.XXXXXX";

fkm_status fkm_write_exact(fkm_ctx *ctx, FILE *f, const char *path, const void *buf, size_t n)
{
    if (n > 0 && fwrite(buf, 1, n, f) != n)
        return fkm_fail(ctx, FKM_E_IO, "%s: write failed: %s", path, strerror(errno));
    return FKM_OK;
}

/* The process umask, read without changing it: umask() can only be queried by setting it,
 * which would race with other threads creating files. Linux shows it in /proc/self/status;
 * elsewhere assume the common 022. */
static mode_t current_umask(void)
{
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return mask;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Umask:", 6) == 0) {
            char *end;
            unsigned long v = strtoul(line + 6, &end, 8);
            if (end != line + 6) mask = (mode_t)(v & 0777);
            break;
        }
    }
    fclose(f);
    return mask;
}

/* mkstemp creates the file 0600; give the result the permissions a plain fopen would have
 * (or the replaced file's), so that an atomic save is not more private than a normal one. */
static void set_final_mode(int fd, const char *path)
{
    struct stat st;
    mode_t mode = (stat(path, &st) == 0) ? (st.st_mode & 07777) : (0666 & ~current_umask());
    (void)fchmod(fd, mode); /* best effort: a 0600 file is still a correct file */
}

/* After the rename, make the new directory entry durable too. Best effort: the data is
 * already written and renamed, so a failure here is not reported as a failed save. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Flushes, syncs and closes f (always closing it). Returns FKM_OK or FKM_E_IO. */
static fkm_status finish_file(fkm_ctx *ctx, FILE *f, const char *path)
{
    const char *what = NULL;
    int err = 0;
    if (fflush(f) != 0) {
        what = "flush";
        err = errno;
    } else if (fsync(fileno(f)) != 0) {
        what = "fsync";
        err = errno;
    }
    if (fclose(f) != 0 && !what) {
        what = "close";
        err = errno;
    }
    if (what) return fkm_fail(ctx, FKM_E_IO, "%s: %s failed: %s", path, what, strerror(err));
    return FKM_OK;
}

fkm_status fkm_atomic_write(fkm_ctx *ctx, const char *path, fkm_write_fn write_fn,
                            const void *user)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + sizeof tmp_suffix);
    if (!tmp) return fkm_fail(ctx, FKM_E_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, len);
    memcpy(tmp + len, tmp_suffix, sizeof tmp_suffix);

    int fd = mkstemp(tmp);
    if (fd < 0) {
        fkm_status s = fkm_fail(ctx, FKM_E_IO, "%s: cannot create a temporary file: %s", path,
                                strerror(errno));
        free(tmp);
        return s;
    }
    set_final_mode(fd, path);

    fkm_status s = FKM_OK;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        s = fkm_fail(ctx, FKM_E_IO, "%s: cannot open a temporary file: %s", path,
                     strerror(errno));
        close(fd);
    } else {
        s = write_fn(ctx, f, path, user);
        if (s == FKM_OK) {
            s = finish_file(ctx, f, path);
        } else {
            fclose(f); /* the write already failed; its message is the one to keep */
        }
    }
    if (s == FKM_OK && rename(tmp, path) != 0)
        s = fkm_fail(ctx, FKM_E_IO, "%s: cannot rename %s onto it: %s", path, tmp,
                     strerror(errno));
    if (s == FKM_OK)
        sync_parent_dir(path);
    else
        unlink(tmp);
    free(tmp);
    return s;
}
