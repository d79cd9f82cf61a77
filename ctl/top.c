/*
 * top.c - `corralctl top`: a live view of one instance.
 *
 * Owns the terminal while it runs. On a terminal: the alternate screen,
 * hidden cursor and non-canonical, no-echo input (termios), redrawn every
 * --interval seconds (default 1) with plain ANSI escapes; 'q' quits;
 * SIGINT, SIGTERM and SIGHUP quit; SIGWINCH redraws at the new size;
 * SIGTSTP (Ctrl-Z) gives the terminal back before stopping and takes it
 * again on SIGCONT. Every way out goes through term_restore(), which atexit
 * also calls, so the shell gets its terminal back whatever happens.
 *
 * When stdout is not a terminal: one plain block per refresh, separated by
 * a blank line, until --count blocks were printed (forever with 0).
 *
 * Each frame: a title, the totals (with per-second rates from the last two
 * snapshots), the workers sorted by req/s, then the routes by req/s as far
 * as the screen allows. If the master is gone (a restart made a new
 * segment), the view attaches again by name and carries on.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "conf/common.h"
#include "ctl.h"

#define DEFAULT_INTERVAL    1.0
#define MAX_HIGHLIGHT       4

static volatile sig_atomic_t got_stop;
static volatile sig_atomic_t got_winch;
static volatile sig_atomic_t got_tstp;

/* The terminal as we found it; restored on every exit path. */
static struct {
    int                  screen;        /* alternate screen entered */
    int                  raw;           /* termios changed */
    struct termios       saved;
} term;

static void
on_stop(int sig)
{
    (void)sig;
    got_stop = 1;
}

static void
on_winch(int sig)
{
    (void)sig;
    got_winch = 1;
}

static void
on_tstp(int sig)
{
    (void)sig;
    got_tstp = 1;
}

static void
write_all(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, s, n);

        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void
term_restore(void)
{
    if (term.screen) {
        static const char leave[] = "\033[0m\033[?25h\033[?1049l";

        write_all(leave, sizeof(leave) - 1);
        term.screen = 0;
    }
    if (term.raw) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &term.saved);
        term.raw = 0;
    }
}

static void
term_enter(void)
{
    static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";
    struct termios t;

    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &term.saved) == 0) {
        t = term.saved;
        t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);    /* keep ISIG: Ctrl-C is SIGINT */
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0) {
            term.raw = 1;
        }
    }
    write_all(enter, sizeof(enter) - 1);
    term.screen = 1;
}

static void
handle(int sig, void (*fn)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;            /* no SA_RESTART: poll() returns EINTR */
    sigaction(sig, &sa, NULL);
}

static unsigned
count_lines(const struct cr_report_buf *b)
{
    unsigned n = 0;
    size_t i;

    for (i = 0; i < b->len; i++) {
        n += b->data[i] == '\n';
    }
    return n;
}

/*
 * One frame into <b>: title, totals, workers, routes. <hl> receives the
 * lines to highlight (table headers), <nhl> how many.
 */
static void
frame(struct cr_report_buf *b, const struct cr_ctl_reader *r, double interval, int tty,
      int *hl, int *nhl)
{
    struct cr_report_in in, pin;
    struct cr_report_totals t, pt;
    const struct cr_shm_header *h = r->cur;
    char tbuf[32], bin[32], bout[32], p50[16], p99[16];
    time_t now = (time_t)(r->cur_ms / 1000);
    struct tm tm;
    unsigned base;
    int line;
    double el;

    *nhl = 0;
    if (r->cur_mono_ms == 0) {
        cr_report_buf_printf(b, "corral top - %s - no readable segment yet%s\n", r->name,
                             tty ? " - q quits" : "");
        return;
    }
    localtime_r(&now, &tm);
    strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
    cr_ctl_input(r, 1, &in);
    cr_report_buf_printf(b, "corral top - %.*s - %s - every %.1fs%s\n",
                         (int)strnlen(h->name, sizeof(h->name)), h->name, tbuf, interval,
                         tty ? " - q quits" : "");
    cr_ctl_summary(b, &in);

    /* rates of the totals over the window */
    cr_report_totals(&in, &t);
    el = in.prev != NULL ? in.elapsed : 0;
    if (el > 0) {
        memset(&pin, 0, sizeof(pin));
        pin.cur = in.prev;
        pin.now_ms = in.now_ms;
        cr_report_totals(&pin, &pt);
#define RATE(k) ((double)(t.c[k] > pt.c[k] ? t.c[k] - pt.c[k] : 0) / el)
        cr_ctl_fmt_bytes(bin, sizeof(bin), RATE(CR_SHM_C_client_bytes_in_total));
        cr_ctl_fmt_bytes(bout, sizeof(bout), RATE(CR_SHM_C_client_bytes_out_total));
        cr_ctl_fmt_ms(p50, sizeof(p50), t.latency.p50);
        cr_ctl_fmt_ms(p99, sizeof(p99), t.latency.p99);
        cr_report_buf_printf(b, "per second: 2xx %.1f  3xx %.1f  4xx %.1f  5xx %.1f  "
                             "conns %.1f  in %s  out %s  p50 %s ms  p99 %s ms\n",
                             RATE(CR_SHM_C_responses_2xx_total),
                             RATE(CR_SHM_C_responses_3xx_total),
                             RATE(CR_SHM_C_responses_4xx_total),
                             RATE(CR_SHM_C_responses_5xx_total),
                             RATE(CR_SHM_C_connections_accepted_total), bin, bout,
                             p50, p99);
#undef RATE
    } else {
        cr_report_buf_printf(b, "per second: (lifetime averages until the next refresh)\n");
    }
    cr_report_buf_add(b, "\n", 1);

    base = count_lines(b);
    cr_ctl_workers_table(b, &in, 1, &line);
    if (line >= 0 && *nhl < MAX_HIGHLIGHT) {
        hl[(*nhl)++] = (int)base + line;
    }
    if (h->routes_cap > 0) {
        cr_report_buf_add(b, "\n", 1);
        base = count_lines(b);
        cr_ctl_routes_table(b, &in, 1, &line);
        if (line >= 0 && *nhl < MAX_HIGHLIGHT) {
            hl[(*nhl)++] = (int)base + line;
        }
    }
}

/* Draw <b> on the screen, clipped to its size, headers in reverse video. */
static void
draw(const struct cr_report_buf *b, const int *hl, int nhl)
{
    struct cr_report_buf out;
    struct winsize ws;
    int rows = 24, cols = 80, row = 0, i, on;
    const char *p = b->data, *end = b->data + b->len;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        rows = ws.ws_row;
        cols = ws.ws_col;
    }
    cr_report_buf_init(&out);
    cr_report_buf_printf(&out, "\033[H");
    while (p < end && row < rows) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        int len = (int)((nl != NULL ? nl : end) - p);

        if (len > cols) {
            len = cols;
        }
        for (on = 0, i = 0; i < nhl; i++) {
            on |= hl[i] == row;
        }
        if (row > 0) {
            cr_report_buf_add(&out, "\n", 1);
        }
        if (on) {
            cr_report_buf_printf(&out, "\033[7m%-*.*s\033[0m", cols, len, p);
        } else {
            cr_report_buf_printf(&out, "%.*s\033[K", len, p);
        }
        row++;
        p = nl != NULL ? nl + 1 : end;
    }
    cr_report_buf_printf(&out, "\033[J");
    if (!out.failed) {
        write_all(out.data, out.len);
    }
    cr_report_buf_free(&out);
}

/*
 * Wait up to <ms> for a key or a signal. Returns 1 to quit, 2 to redraw
 * now (resize, resume), 0 when the time is up.
 */
static int
wait_input(int ms, int keys)
{
    uint64_t until = cr_ctl_mono_ms() + (uint64_t)(ms > 0 ? ms : 0);

    for (;;) {
        struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
        uint64_t now = cr_ctl_mono_ms();
        int left = now >= until ? 0 : (int)(until - now), n;
        char c[64];

        if (got_stop) {
            return 1;
        }
        if (got_tstp) {
            got_tstp = 0;
            term_restore();
            signal(SIGTSTP, SIG_DFL);
            raise(SIGTSTP);             /* stops here until SIGCONT */
            handle(SIGTSTP, on_tstp);
            term_enter();
            return 2;
        }
        if (got_winch) {
            got_winch = 0;
            return 2;
        }
        if (left == 0) {
            return 0;
        }
        n = poll(&pfd, keys ? 1 : 0, left);
        if (n > 0 && (pfd.revents & POLLIN)) {
            ssize_t k = read(STDIN_FILENO, c, sizeof(c)), i;

            if (k == 0) {
                keys = 0;               /* stdin closed: wait on time only */
            }
            for (i = 0; i < k; i++) {
                if (c[i] == 'q' || c[i] == 'Q') {
                    return 1;
                }
            }
        } else if (n > 0) {
            keys = 0;                   /* POLLHUP/POLLERR: stop polling it */
        }
    }
}

/* The master went away: attach the segment of whatever now runs as <name>. */
static void
reattach(struct cr_ctl_reader *r)
{
    struct cr_ctl_reader fresh;

    if (cr_ctl_master_alive(r->cur)) {
        return;
    }
    /* no snapshot yet: the caller's next read starts a new window */
    if (cr_ctl_open(&fresh, r->name, 1) == CR_OK && cr_ctl_master_alive(fresh.shm.hdr)) {
        fresh.quiet = r->quiet;
        cr_ctl_close(r);
        *r = fresh;
    } else {
        cr_ctl_close(&fresh);
    }
}

static int
top_tty(struct cr_ctl_reader *r, const struct cr_ctl_opts *o, double interval)
{
    struct cr_report_buf b;
    int hl[MAX_HIGHLIGHT], nhl, w, keys = isatty(STDIN_FILENO);
    long shown = 0;

    atexit(term_restore);
    handle(SIGINT, on_stop);
    handle(SIGTERM, on_stop);
    handle(SIGHUP, on_stop);
    handle(SIGWINCH, on_winch);
    handle(SIGTSTP, on_tstp);
    r->quiet = 1;           /* an error line would scribble on the screen */
    term_enter();
    cr_report_buf_init(&b);
    frame(&b, r, interval, 1, hl, &nhl);       /* lifetime figures at once */
    draw(&b, hl, nhl);
    for (;;) {
        w = wait_input((int)(interval * 1000), keys);
        if (w == 1) {
            break;
        }
        if (w == 0) {
            reattach(r);
            cr_ctl_read(r);     /* on failure the last good snapshot stays */
            shown++;
        }
        cr_report_buf_reset(&b);
        frame(&b, r, interval, 1, hl, &nhl);
        draw(&b, hl, nhl);
        if (o->count > 0 && shown >= o->count) {
            break;
        }
    }
    cr_report_buf_free(&b);
    term_restore();
    return CR_CTL_EXIT_OK;
}

static int
top_plain(struct cr_ctl_reader *r, const struct cr_ctl_opts *o, double interval)
{
    struct cr_report_buf b;
    int hl[MAX_HIGHLIGHT], nhl;
    long shown;

    cr_report_buf_init(&b);
    for (shown = 0; o->count == 0 || shown < o->count; shown++) {
        cr_ctl_sleep(interval);
        reattach(r);
        if (cr_ctl_read(r) != CR_OK) {
            cr_report_buf_free(&b);
            return CR_CTL_EXIT_FAIL;
        }
        cr_report_buf_reset(&b);
        if (shown > 0) {
            cr_report_buf_add(&b, "\n", 1);
        }
        frame(&b, r, interval, 0, hl, &nhl);
        if (b.failed || fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout) != 0) {
            cr_report_buf_free(&b);
            return CR_CTL_EXIT_FAIL;
        }
    }
    cr_report_buf_free(&b);
    return CR_CTL_EXIT_OK;
}

int
cr_ctl_top(const struct cr_ctl_opts *o)
{
    struct cr_ctl_reader r;
    double interval = o->interval < 0 ? DEFAULT_INTERVAL : o->interval;
    int rc;

    if (!(interval > 0)) {
        fprintf(stderr, "corralctl: top: --interval must be more than 0\n");
        return CR_CTL_EXIT_USAGE;
    }
    if (cr_ctl_open(&r, o->name, 0) != CR_OK || cr_ctl_read(&r) != CR_OK) {
        cr_ctl_close(&r);
        return CR_CTL_EXIT_FAIL;
    }
    rc = isatty(STDOUT_FILENO) ? top_tty(&r, o, interval) : top_plain(&r, o, interval);
    cr_ctl_close(&r);
    return rc;
}
