/*
 * ctl.h - corralctl's internal interfaces.
 *
 * main.c owns argv and dispatch and fills a struct cr_ctl_opts; each command
 * returns its exit status (CR_CTL_EXIT_*). stats.c owns struct
 * cr_ctl_reader (a read-only mapping of one instance's segment and two
 * snapshot buffers) and the text tables; top.c owns the terminal while
 * `top` runs; cmd.c sends signals to the master and checks config files.
 * Every message for the operator goes to stderr as one line starting with
 * "corralctl: "; data goes to stdout.
 */
#ifndef CR_CTL_H
#define CR_CTL_H

#include <stdint.h>
#include <sys/types.h>

#include "shm/report.h"
#include "shm/shm.h"

enum {
    CR_CTL_EXIT_OK    = 0,
    CR_CTL_EXIT_FAIL  = 1,
    CR_CTL_EXIT_USAGE = 2
};

/* What a table or document shows. */
enum cr_ctl_view {
    CR_CTL_STATUS = 0,
    CR_CTL_WORKERS,
    CR_CTL_ROUTES,
    CR_CTL_UPSTREAMS
};

struct cr_ctl_opts {
    const char          *name;          /* instance; -n, CORRAL_NAME, "default" */
    int                  json;          /* --json */
    double               interval;      /* --interval seconds; < 0: command default */
    long                 count;         /* --count refreshes; 0: until quit */
    double               timeout;       /* --timeout seconds; < 0: command default */
    const char          *conf_path;     /* check -c FILE */
    int                  describe;      /* stats --describe */
    int                  fast;          /* stop --fast */
};

/* One instance's segment, mapped read-only, and snapshots of it. */
struct cr_ctl_reader {
    struct cr_shm        shm;
    const char          *name;
    void                *cur;           /* last snapshot, shm.size bytes */
    void                *prev;          /* the one before, or unused */
    int                  have_prev;
    uint64_t             cur_mono_ms;   /* CLOCK_MONOTONIC when taken */
    uint64_t             prev_mono_ms;
    uint64_t             cur_ms;        /* unix ms when cur was taken */
    int                  quiet;         /* errors not printed (top's screen) */
};

/* ---- stats.c ---- */

/*
 * Attach <name>'s segment; on failure print one line (unless <quiet>) and
 * return CR_ERR. cr_ctl_close() is safe after a failed open.
 */
int  cr_ctl_open(struct cr_ctl_reader *r, const char *name, int quiet);
void cr_ctl_close(struct cr_ctl_reader *r);

/* Print cr_shm_attach()'s <err> as one line naming the file. */
void cr_ctl_attach_error(const struct cr_shm *shm, const char *err);

/* Take a snapshot; the previous one becomes r->prev. CR_ERR (printed
 * unless quiet); the last good snapshot then stays in r->cur. */
int  cr_ctl_read(struct cr_ctl_reader *r);

/* Forget r->prev (the segment was replaced). */
void cr_ctl_forget(struct cr_ctl_reader *r);

/* A report input from the reader's snapshots (with a window if <window>). */
void cr_ctl_input(const struct cr_ctl_reader *r, int window, struct cr_report_in *in);

/* Is the master whose pid <h> names alive (not a zombie)? Is <pid>? */
int  cr_ctl_master_alive(const struct cr_shm_header *h);
int  cr_ctl_pid_alive(pid_t pid);

/*
 * Text renderings into <out>. The summary is two lines; a table is a
 * header line, one line per row and an optional footnote. <hdr_line>, if
 * not NULL, receives the index (0-based) within what was appended of the
 * table's header line, so top can highlight it.
 */
void cr_ctl_summary(struct cr_report_buf *out, const struct cr_report_in *in);
void cr_ctl_workers_table(struct cr_report_buf *out, const struct cr_report_in *in,
                          int by_rps, int *hdr_line);
void cr_ctl_routes_table(struct cr_report_buf *out, const struct cr_report_in *in,
                         int by_rps, int *hdr_line);
void cr_ctl_upstreams_table(struct cr_report_buf *out, const struct cr_report_in *in,
                            int *hdr_line);

/* Human numbers: "1.5K"-style bytes, durations "5m03s", milliseconds. */
void cr_ctl_fmt_bytes(char *out, size_t len, double n);
void cr_ctl_fmt_dur(char *out, size_t len, double seconds);
void cr_ctl_fmt_ms(char *out, size_t len, double ms);      /* "-" if 0 */

int  cr_ctl_show(const struct cr_ctl_opts *o, enum cr_ctl_view view);
int  cr_ctl_metrics(const struct cr_ctl_opts *o);
int  cr_ctl_stats(const struct cr_ctl_opts *o);
int  cr_ctl_describe(void);

/* ---- top.c ---- */

int  cr_ctl_top(const struct cr_ctl_opts *o);

/* ---- cmd.c ---- */

int  cr_ctl_reload(const struct cr_ctl_opts *o);
int  cr_ctl_stop(const struct cr_ctl_opts *o);
int  cr_ctl_reopen(const struct cr_ctl_opts *o);
int  cr_ctl_check(const struct cr_ctl_opts *o);

/* Monotonic and wall clocks in milliseconds; a sleep that survives EINTR. */
uint64_t cr_ctl_mono_ms(void);
uint64_t cr_ctl_unix_ms(void);
void     cr_ctl_sleep(double seconds);

#endif /* CR_CTL_H */
