/*
 * test_headers.c - every header compiles on its own (STYLE.md §3).
 *
 * For each header under gateway/, conf/, shm/ and ctl/, found at run time
 * so a new header is checked without touching this file, run the compiler
 * on a translation unit holding nothing but
 *
 *     #include "<dir>/<name>.h"
 *
 * with the project's include path and warnings, and expect success. A
 * header that leans on something its includer happened to include first
 * (size_t without <stddef.h>, a libevent type without a forward
 * declaration) fails here, named.
 *
 * Run from the repository root, as tests/unit/run.sh does. $CC picks the
 * compiler (default cc); $LLHTTP_INC_DIR the directory of llhttp.h, with the
 * Makefile's default.
 */
#include <glob.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#define DEFAULT_LLHTTP_INC_DIR  "/usr/share/include/llhttp"

/* Same warnings as the Makefile's WARN: a header included by our .c files
 * must not warn either, since every file is built with -Werror. */
#define HDR_WARN    "-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes " \
                    "-Wmissing-prototypes -Wpointer-arith"

static const char *const header_globs[] = {
    "gateway/*.h",
    "conf/*.h",
    "shm/*.h",
    "ctl/*.h",
};

static const char *
env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return (v != NULL && *v != '\0') ? v : dflt;
}

/*
 * Compile <source> (a complete translation unit) with -fsyntax-only.
 * Diagnostics go to our stderr, next to cmocka's messages. Returns 1 if the
 * compiler succeeded.
 */
static int
compiles(const char *source)
{
    char  cmd[1024];
    FILE *p;
    int   n, status;

    n = snprintf(cmd, sizeof(cmd),
                 "%s -fsyntax-only " HDR_WARN " -I. -D_GNU_SOURCE -I'%s' "
                 "$(pkg-config --cflags libevent) -x c - 1>&2",
                 env_or("CC", "cc"), env_or("LLHTTP_INC_DIR", DEFAULT_LLHTTP_INC_DIR));
    assert_true(n > 0 && (size_t)n < sizeof(cmd));

    fflush(stdout);
    fflush(stderr);
    p = popen(cmd, "w");
    assert_non_null(p);
    fputs(source, p);
    status = pclose(p);
    assert_int_not_equal(status, -1);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Every header of the checked directories, sorted; fails if there is none. */
static void
find_headers(glob_t *g)
{
    size_t i;
    int    rc;

    memset(g, 0, sizeof(*g));
    for (i = 0; i < sizeof(header_globs) / sizeof(header_globs[0]); i++) {
        rc = glob(header_globs[i], i == 0 ? 0 : GLOB_APPEND, NULL, g);
        assert_true(rc == 0 || rc == GLOB_NOMATCH);
    }
    if (g->gl_pathc == 0) {
        fail_msg("no headers found: run from the repository root");
    }
}

/*
 * Feed each header through <times> consecutive #include lines; print the
 * ones that fail and fail the test if any did. With <times> 2, a header
 * that does not even compile alone is left to the single-inclusion test,
 * so each failure is reported once, under its real cause.
 */
static void
check_all_headers(int times)
{
    glob_t  g;
    char    src[1024];
    size_t  i, bad = 0;
    int     k, n, off;

    find_headers(&g);
    for (i = 0; i < g.gl_pathc; i++) {
        const char *h = g.gl_pathv[i];

        off = 0;
        for (k = 0; k < times; k++) {
            n = snprintf(src + off, sizeof(src) - (size_t)off, "#include \"%s\"\n", h);
            assert_true(n > 0 && (size_t)n < sizeof(src) - (size_t)off);
            off += n;
        }
        if (compiles(src)) {
            continue;
        }
        if (times == 1) {
            print_error("%s does not compile when included alone\n", h);
            bad++;
        } else if (compiles(src + off / times)) {     /* the last line alone */
            print_error("%s compiles alone but not when included twice: "
                        "include guard?\n", h);
            bad++;
        }
    }
    globfree(&g);
    if (bad != 0) {
        fail_msg("%zu header(s) failed", bad);
    }
}

static void
test_headers_each_compiles_alone(void **state)
{
    (void)state;
    check_all_headers(1);
}

static void
test_headers_each_survives_double_inclusion(void **state)
{
    (void)state;
    check_all_headers(2);
}

/*
 * The check itself must be able to fail: a unit that uses size_t without
 * including anything is refused, and one that declares it is accepted.
 */
static void
test_headers_checker_rejects_a_self_insufficient_unit(void **state)
{
    (void)state;
    fprintf(stderr, "(a compiler error about size_t is expected next)\n");
    assert_false(compiles("struct t { size_t n; };\n"));
    assert_true(compiles("#include <stddef.h>\nstruct t { size_t n; };\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_checker_rejects_a_self_insufficient_unit),
        cmocka_unit_test(test_headers_each_compiles_alone),
        cmocka_unit_test(test_headers_each_survives_double_inclusion),
    };

    /* a compiler that exits before reading stdin must not kill us */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
