/*
 * cmd.c - commands to a running master (reload, stop, reopen) and the
 * config check.
 *
 * The master is found through its segment: the header holds its pid. A pid
 * read from a file is only a hint (the master may be gone and the number
 * reused), so before any signal find_master() checks, in order: the pid is
 * alive and not a zombie; the process runs a program called corral
 * (cr_shm_pid_is_corral); the segment is the one of the instance asked for
 * (its header carries the name); and, when /proc/PID/maps is readable, the
 * process has /dev/shm/corral.NAME mapped, which only the master that
 * created it (and its workers, whose pids the header does not hold) does.
 * Only then is the signal sent; anything else is one line on stderr and
 * exit 1.
 *
 * Outcomes come back through the header: the master bumps reloads_ok or
 * reloads_failed (and writes the first error into last_reload_error) when
 * it finished a SIGHUP, so `reload` waits for one of the two to move.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/common.h"
#include "conf/conf.h"
#include "ctl.h"

#define DEFAULT_TIMEOUT     10.0
#define POLL_S              0.05

/*
 * Does /proc/<pid>/maps list the segment "/dev/shm<path>"? 1 yes, 0 no,
 * -1 cannot tell (not readable: another user's process).
 */
static int
maps_segment(pid_t pid, const char *shm_path)
{
    char maps[64], want[CR_SHM_NAME_MAX + 32], line[4096];
    size_t wl;
    FILE *f;
    int found = 0;

    snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
    snprintf(want, sizeof(want), "/dev/shm%s", shm_path);
    wl = strlen(want);
    f = fopen(maps, "r");
    if (f == NULL) {
        return -1;
    }
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char *p = strstr(line, want);

        /* the whole name: end of line, or " (deleted)" after an unlink */
        found = p != NULL && (p[wl] == '\n' || p[wl] == '\0' || p[wl] == ' ');
    }
    fclose(f);
    return found;
}

/*
 * Attach <name>'s segment and find its master (see the top of the file).
 * Returns the pid with <shm> attached, or -1 after printing why not.
 */
static pid_t
find_master(struct cr_shm *shm, const char *name)
{
    char err[256];
    pid_t pid;

    if (cr_shm_attach(shm, name, err, sizeof(err)) != CR_OK) {
        cr_ctl_attach_error(shm, err);
        return -1;
    }
    pid = __atomic_load_n(&shm->hdr->master_pid, __ATOMIC_RELAXED);
    if (strncmp(shm->hdr->name, name, sizeof(shm->hdr->name)) != 0) {
        fprintf(stderr, "corralctl: /dev/shm%s belongs to instance \"%.*s\", not \"%s\"\n",
                shm->path, (int)strnlen(shm->hdr->name, sizeof(shm->hdr->name)),
                shm->hdr->name, name);
        goto fail;
    }
    if (!cr_ctl_pid_alive(pid)) {
        fprintf(stderr, "corralctl: master pid %d of instance \"%s\" is not running "
                "(stale segment /dev/shm%s)\n", (int)pid, name, shm->path);
        goto fail;
    }
    if (!cr_shm_pid_is_corral(pid)) {
        fprintf(stderr, "corralctl: pid %d named by /dev/shm%s is not a corral process "
                "(stale segment; the pid was reused)\n", (int)pid, shm->path);
        goto fail;
    }
    if (maps_segment(pid, shm->path) == 0) {
        fprintf(stderr, "corralctl: pid %d is a corral process but not the master of "
                "instance \"%s\" (stale segment)\n", (int)pid, name);
        goto fail;
    }
    return pid;

fail:
    cr_shm_detach(shm);
    return -1;
}

static int
send_signal(pid_t pid, int sig, const char *what)
{
    if (kill(pid, sig) == -1) {
        fprintf(stderr, "corralctl: cannot send %s to master pid %d: %s%s\n", what, (int)pid,
                strerror(errno), errno == EPERM ? " (run as corral's user or root)" : "");
        return CR_ERR;
    }
    return CR_OK;
}

static uint64_t
load64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

int
cr_ctl_reload(const struct cr_ctl_opts *o)
{
    double timeout = o->timeout < 0 ? DEFAULT_TIMEOUT : o->timeout;
    const struct cr_shm_header *h;
    uint64_t ok0, failed0, deadline;
    struct cr_shm shm;
    char msg[sizeof(h->last_reload_error)];
    pid_t pid;

    pid = find_master(&shm, o->name);
    if (pid == -1) {
        return CR_CTL_EXIT_FAIL;
    }
    h = shm.hdr;
    ok0 = load64(&h->reloads_ok);
    failed0 = load64(&h->reloads_failed);
    if (send_signal(pid, SIGHUP, "SIGHUP") != CR_OK) {
        cr_shm_detach(&shm);
        return CR_CTL_EXIT_FAIL;
    }
    deadline = cr_ctl_mono_ms() + (uint64_t)(timeout * 1000);
    for (;;) {
        if (load64(&h->reloads_ok) != ok0) {
            printf("reload: generation %llu serving\n",
                   (unsigned long long)load64(&h->generation));
            cr_shm_detach(&shm);
            return CR_CTL_EXIT_OK;
        }
        if (load64(&h->reloads_failed) != failed0) {
            memcpy(msg, h->last_reload_error, sizeof(msg));
            msg[sizeof(msg) - 1] = '\0';
            msg[strcspn(msg, "\n")] = '\0';
            fprintf(stderr, "reload failed: %s\n",
                    msg[0] ? msg : "the master rejected the configuration (see its log)");
            cr_shm_detach(&shm);
            return CR_CTL_EXIT_FAIL;
        }
        if (!cr_ctl_pid_alive(pid)) {
            fprintf(stderr, "reload failed: master pid %d exited\n", (int)pid);
            cr_shm_detach(&shm);
            return CR_CTL_EXIT_FAIL;
        }
        if (cr_ctl_mono_ms() >= deadline) {
            fprintf(stderr, "reload failed: no outcome from master pid %d after %g s\n",
                    (int)pid, timeout);
            cr_shm_detach(&shm);
            return CR_CTL_EXIT_FAIL;
        }
        cr_ctl_sleep(POLL_S);
    }
}

int
cr_ctl_stop(const struct cr_ctl_opts *o)
{
    double timeout = o->timeout < 0 ? DEFAULT_TIMEOUT : o->timeout;
    uint64_t deadline;
    struct cr_shm shm;
    pid_t pid;

    pid = find_master(&shm, o->name);
    if (pid == -1) {
        return CR_CTL_EXIT_FAIL;
    }
    cr_shm_detach(&shm);
    if (send_signal(pid, o->fast ? SIGQUIT : SIGTERM, o->fast ? "SIGQUIT" : "SIGTERM")
        != CR_OK)
    {
        return CR_CTL_EXIT_FAIL;
    }
    deadline = cr_ctl_mono_ms() + (uint64_t)(timeout * 1000);
    while (cr_ctl_pid_alive(pid) && cr_shm_pid_is_corral(pid)) {
        if (cr_ctl_mono_ms() >= deadline) {
            fprintf(stderr, "corralctl: stop: master pid %d still running after %g s\n",
                    (int)pid, timeout);
            return CR_CTL_EXIT_FAIL;
        }
        cr_ctl_sleep(POLL_S);
    }
    printf("stop: master pid %d exited\n", (int)pid);
    return CR_CTL_EXIT_OK;
}

int
cr_ctl_reopen(const struct cr_ctl_opts *o)
{
    struct cr_shm shm;
    pid_t pid;

    pid = find_master(&shm, o->name);
    if (pid == -1) {
        return CR_CTL_EXIT_FAIL;
    }
    cr_shm_detach(&shm);
    if (send_signal(pid, SIGUSR1, "SIGUSR1") != CR_OK) {
        return CR_CTL_EXIT_FAIL;
    }
    printf("reopen: master pid %d reopens its logs\n", (int)pid);
    return CR_CTL_EXIT_OK;
}

int
cr_ctl_check(const struct cr_ctl_opts *o)
{
    struct cr_conf_errs errs = { NULL, 0 };
    struct cr_conf *conf;
    size_t i;

    conf = cr_conf_load(o->conf_path, &errs);
    if (conf == NULL) {
        for (i = 0; i < errs.n; i++) {
            fprintf(stderr, "%s\n", errs.msgs[i]);
        }
        if (errs.n == 0) {
            fprintf(stderr, "%s: cannot load the configuration\n", o->conf_path);
        }
        cr_conf_errs_free(&errs);
        return CR_CTL_EXIT_FAIL;
    }
    cr_conf_errs_free(&errs);
    cr_conf_free(conf);
    printf("%s: ok\n", o->conf_path);
    return CR_CTL_EXIT_OK;
}
