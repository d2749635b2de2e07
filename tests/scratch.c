/* scratch.c — see scratch.h. */
#define _POSIX_C_SOURCE 200809L
#include "scratch.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ts_failures;
static char dir_buf[256];

bool ts_check(bool ok, const char *file, int line, const char *fmt, ...)
{
    if (!ok) {
        const char *base = strrchr(file, '/');
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "%s:%d: FAILED: ", base ? base + 1 : file, line);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        ts_failures++;
    }
    return ok;
}

int ts_make_dir(const char *prefix)
{
    snprintf(dir_buf, sizeof dir_buf, "/tmp/%sXXXXXX", prefix);
    if (!mkdtemp(dir_buf)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

const char *ts_dir(void) { return dir_buf; }

const char *ts_path(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir_buf, name);
    return b;
}

void ts_write_file(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(ts_path(name), "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", ts_path(name));
        exit(2);
    }
}

void ts_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) ts_remove_tree(path);
        else unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int ts_finish(const char *test)
{
    if (ts_failures) {
        fprintf(stderr, "%s: %d check(s) failed; files kept in %s\n", test, ts_failures, dir_buf);
        return 1;
    }
    ts_remove_tree(dir_buf);
    printf("%s: all checks passed\n", test);
    return 0;
}
