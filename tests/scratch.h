/* scratch.h — what the file-writing tests (test_io, test_cli) share: a private temporary
 * directory, paths inside it, a file writer, and checks that report file:line and count
 * failures (usable inside expressions, unlike common.h's CHECK). */
#ifndef FKM_TEST_SCRATCH_H
#define FKM_TEST_SCRATCH_H

#include <stdbool.h>
#include <stddef.h>

extern int ts_failures;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
bool ts_check(bool ok, const char *file, int line, const char *fmt, ...);
#define TS_CHECK(cond, ...) ts_check((cond), __FILE__, __LINE__, __VA_ARGS__)

/* Creates /tmp/<prefix>XXXXXX; returns 0 on success. */
int ts_make_dir(const char *prefix);
const char *ts_dir(void);
/* dir/name, in one of 8 rotating buffers (several can be live at once). */
const char *ts_path(const char *name);
/* Writes n bytes to dir/name; exits the test with status 2 if it cannot. */
void ts_write_file(const char *name, const void *data, size_t n);
/* Removes dir/name recursively. */
void ts_remove_tree(const char *dir);
/* Exit status for main: 0 and the directory removed when no check failed, else 1 and the
 * directory kept (its path printed). */
int ts_finish(const char *test);

#endif
