/* host_memory.c — what kind of host memory a range is, for the GPU backend's choice between
 * registering (pinning) the caller's buffer and copying through staging buffers. */
#define _GNU_SOURCE /* sscanf's %llx on some libcs; nothing else */
#include "internal.h"

#include <stdio.h>

/* Whether any part of [p, p + len) lies in a file-backed mapping (a memory-mapped input file):
 * /proc/self/maps gives each mapping's inode, 0 for anonymous memory (malloc, mmap of no file).
 * Pinning such a range would read the whole file into RAM and lock it there, which defeats
 * inputs larger than RAM. Returns 0 where /proc is unavailable (the caller then registers as
 * before). */
int fkm_host_range_file_backed(const void *p, size_t len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    const unsigned long long lo = (unsigned long long)(uintptr_t)p, hi = lo + (unsigned long long)len;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long a, b, inode;
        if (sscanf(line, "%llx-%llx %*s %*s %*s %llu", &a, &b, &inode) != 3) continue;
        if (a < hi && lo < b && inode != 0) found = 1;
    }
    fclose(f);
    return found;
}
