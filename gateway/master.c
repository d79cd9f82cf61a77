/*
 * master.c - the supervising master process.
 *
 * Owns the current config (and the next one during a reload), the table of
 * worker processes, the per-slot respawn state and the process signal mask.
 * The master never opens a listen address and never touches client
 * traffic: each worker binds its own SO_REUSEPORT sockets after fork.
 *
 * Design notes
 *
 * One thread, one poll(2) loop, no signal handlers. The signals we act on
 * are blocked and read from a signalfd, so everything (forking, freeing a
 * config, logging) happens in ordinary code. The loop waits on the
 * signalfd, on the read end of each starting worker's readiness pipe, and
 * on the nearest deadline (a readiness timeout, a respawn, a SIGKILL).
 *
 * Readiness: each worker gets a pipe; it writes one byte once all its
 * listeners listen. EOF without the byte means it died first; no byte
 * within MASTER_READY_MS means it is stuck.
 *
 * Generations: every reload starts a full new set of workers with the next
 * generation number. Until all of them are ready the old generation keeps
 * serving (SO_REUSEPORT lets both listen at once); then the old one is sent
 * SIGTERM and drains by itself. A process we asked to stop carries
 * PROC_F_STOPPING: its exit is expected and never respawned, whatever
 * generation it belongs to. Any other exit of the current generation is a
 * crash: the slot is respawned with backoff, and too many crashes in a
 * short window stop the whole instance rather than spin.
 *
 * Requests that arrive while the master is busy (SIGHUP during start-up or
 * during another reload) are remembered and run once it is idle; several
 * collapse into one, which reads the file as it is by then.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "conf/conf.h"
#include "shm/shm.h"
#include "accesslog.h"
#include "admin.h"
#include "health.h"
#include "log.h"
#include "master.h"
#include "stats.h"
#include "steer.h"
#include "worker.h"

#define MASTER_READY_MS         5000    /* a new worker must listen by then */
#define MASTER_BACKOFF_MIN_MS   100     /* first respawn delay of a slot */
#define MASTER_BACKOFF_MAX_MS   5000
#define MASTER_STABLE_MS        10000   /* lived this long: backoff resets */
#define MASTER_CRASH_MAX        10      /* more unexpected exits than this */
#define MASTER_CRASH_WINDOW_MS  30000   /* within this window: give up */
#define MASTER_KILL_GRACE_MS    2000    /* after drain_timeout_ms: SIGKILL */
#define MASTER_QUIT_MS          1000    /* fast stop: SIGKILL after this */
#define MASTER_GIVE_UP_MS       2000    /* after the SIGKILLs: stop waiting */
#define MASTER_POLL_MAX_MS      1000
#define MASTER_HEARTBEAT_MS     3000    /* a worker silent this long is stuck */

#define PROC_F_READY     0x01u          /* wrote its ready byte */
#define PROC_F_STOPPING  0x02u          /* we asked it to stop: exit expected */
#define PROC_F_KILLED    0x04u          /* SIGKILL sent */

/* One live worker process, of any generation. */
struct proc {
    pid_t        pid;
    unsigned     id;
    unsigned     generation;
    unsigned     flags;                 /* PROC_F_* */
    int          ready_fd;              /* read end; -1 once read or closed */
    int          shm_slot;              /* its stats slot; -1 = none */
    uint64_t     started_ms;
    uint64_t     deadline_ms;           /* ready by, or SIGKILL at (STOPPING) */
};

/* Worker id <i> of a generation: who runs it, and when to respawn it. */
struct slot {
    pid_t        pid;                   /* 0: not running */
    uint64_t     backoff_ms;            /* delay of the next respawn */
    uint64_t     respawn_ms;            /* respawn due then; 0: none */
};

struct gen {
    unsigned         number;
    struct cr_conf  *conf;              /* NULL: no such generation */
    unsigned         nworkers;
    struct slot     *slots;             /* nworkers entries */
    struct cr_steer  steer;             /* reuseport steering to this gen */
};

enum phase {
    PHASE_STARTING = 0,                 /* first generation not all ready */
    PHASE_RUNNING,
    PHASE_STOPPING
};

/*
 * A process of the instance that is not a worker: the admin listener and
 * the health checker. One of each at most, restarted a second after it
 * dies, and restarted at once when a reload asks it to exit.
 */
struct helper {
    const char      *name;              /* for logs */
    pid_t            pid;               /* 0 = not running */
    uint64_t         respawn_ms;        /* start it then; 0 = not due */
};

struct master {
    const char      *path;
    pid_t            pid;
    int              sigfd;
    sigset_t         sigs;
    enum phase       phase;
    int              status;            /* exit status once stopped */
    int              stop_sig;          /* SIGTERM or SIGQUIT when stopping */
    uint64_t         give_up_ms;        /* stopping: stop waiting then */
    int              reload_queued;     /* SIGHUP not handled yet */

    struct gen       cur;               /* serving, or starting */
    struct gen       next;              /* being started by a reload */
    unsigned         last_gen;          /* highest generation number used */

    struct proc     *procs;
    size_t           nprocs;
    size_t           procs_cap;

    uint64_t         crash_ms[MASTER_CRASH_MAX + 1];    /* ring of exit times */
    size_t           ncrashes;          /* unexpected exits since start */

    struct cr_shm    shm;               /* stats segment; hdr NULL if none */

    struct helper    admin;             /* admin listener process */
    char            *admin_addr;        /* address it serves (for reloads) */
    struct helper    health;            /* health checker process */
};

/*
 * Give every route and upstream server of <conf> its row in the segment's
 * tables (found by name, so a reload keeps counting into the same rows).
 * Rows are set in the conf before the fork, so workers inherit them.
 */
static void
assign_rows(struct master *m, struct cr_conf *conf)
{
    struct cr_shm_header *h = m->shm.hdr;
    size_t i, j;

    if (h == NULL) {
        return;
    }
    cr_shm_tables_begin(h);
    for (i = 0; i < conf->nroutes; i++) {
        struct cr_conf_route *r = &conf->routes[i];
        const char *up = r->action == CR_ROUTE_UPSTREAM
                         ? conf->upstreams[r->upstream].name : "";

        r->stats_row = cr_shm_route_row(h, r->name, up);
        if (r->stats_row == -1) {
            cr_log_warn("stats: route table full; route \"%s\" is not counted", r->name);
        }
    }
    for (i = 0; i < conf->nupstreams; i++) {
        struct cr_conf_upstream *u = &conf->upstreams[i];

        for (j = 0; j < u->nservers; j++) {
            struct cr_conf_server *s = &u->servers[j];

            s->stats_row = cr_shm_server_row(h, u->name, s->addr.text, s->weight);
            if (s->stats_row == -1) {
                cr_log_warn("stats: server table full; %s/%s is not counted",
                            u->name, s->addr.text);
            }
        }
    }
}

static size_t
count_servers(const struct cr_conf *conf)
{
    size_t i, n = 0;

    for (i = 0; i < conf->nupstreams; i++) {
        n += conf->upstreams[i].nservers;
    }
    return n;
}

/* The file now serving, in the segment's header. */
static void
publish_config(struct master *m, const struct cr_conf *conf, unsigned generation)
{
    struct cr_shm_header *h = m->shm.hdr;

    if (h == NULL) {
        return;
    }
    __atomic_store_n(&h->config_hash, conf->hash, __ATOMIC_RELAXED);
    snprintf(h->config_path, sizeof(h->config_path), "%s", m->path);
    if (m->cur.conf != NULL) {
        snprintf(h->reload_mechanism, sizeof(h->reload_mechanism), "%s",
                 cr_steer_mode_name(m->cur.steer.mode));
    }
    __atomic_store_n(&h->generation, (uint64_t)generation, __ATOMIC_RELEASE);
}

/* A reload failed: count it and keep its first error for corralctl. */
static void
publish_reload_failure(struct master *m, const char *first_error)
{
    struct cr_shm_header *h = m->shm.hdr;

    if (h == NULL) {
        return;
    }
    snprintf(h->last_reload_error, sizeof(h->last_reload_error), "%s", first_error);
    __atomic_add_fetch(&h->reloads_failed, 1, __ATOMIC_RELEASE);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned
resolve_workers(const struct cr_conf *conf)
{
    long n;

    if (conf->workers > 0) {
        return conf->workers;
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* "exit code 2", "signal 9 (Killed)", "signal 11 (Segmentation fault), core dumped" */
static void
describe_status(int status, char *buf, size_t len)
{
    static const char *const codes[] = {
        [CR_EXIT_OK]       = " (stopped)",
        [CR_EXIT_SETUP]    = " (setup failed)",
        [CR_EXIT_LIBEVENT] = " (libevent fatal error)",
        [CR_EXIT_OOM]      = " (out of memory)",
    };
    int code;

    if (WIFEXITED(status)) {
        code = WEXITSTATUS(status);
        snprintf(buf, len, "exit code %d%s", code,
                 (size_t)code < CR_NELEM(codes) && codes[code] != NULL ? codes[code] : "");
    } else if (WIFSIGNALED(status)) {
        snprintf(buf, len, "signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    } else {
        snprintf(buf, len, "status 0x%x", (unsigned)status);
    }
}

static struct proc *
proc_find(struct master *m, pid_t pid)
{
    size_t i;

    for (i = 0; i < m->nprocs; i++) {
        if (m->procs[i].pid == pid) {
            return &m->procs[i];
        }
    }
    return NULL;
}

static void
proc_remove(struct master *m, struct proc *p)
{
    if (p->ready_fd != -1) {
        close(p->ready_fd);
    }
    *p = m->procs[--m->nprocs];
}

/* Ask <p> to stop with <sig>; SIGKILL follows <timeout_ms> later. */
static void
proc_stop(struct proc *p, int sig, uint64_t timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;

    if (p->flags & PROC_F_KILLED) {
        return;
    }
    if (kill(p->pid, sig) == -1 && errno != ESRCH) {
        cr_log_error("kill(%d, %s): %s", (int)p->pid, strsignal(sig), strerror(errno));
    }
    if ((p->flags & PROC_F_STOPPING) == 0 || deadline < p->deadline_ms) {
        p->deadline_ms = deadline;
    }
    p->flags |= PROC_F_STOPPING;
}

static void
gen_free(struct gen *g)
{
    if (g->conf != NULL) {
        cr_conf_free(g->conf);
    }
    free(g->slots);
    cr_steer_free(&g->steer);
    memset(g, 0, sizeof(*g));
}

/*
 * Fill <g> for <conf> (ownership passes to <g>) as generation <number>.
 * Returns CR_OK, or CR_ERR on allocation failure (<conf> is then freed).
 */
static int
gen_init(struct gen *g, struct cr_conf *conf, unsigned number)
{
    unsigned i;

    memset(g, 0, sizeof(*g));
    g->nworkers = resolve_workers(conf);
    g->slots = calloc(g->nworkers, sizeof(*g->slots));
    if (g->slots == NULL) {
        cr_conf_free(conf);
        return CR_ERR;
    }
    for (i = 0; i < g->nworkers; i++) {
        g->slots[i].backoff_ms = MASTER_BACKOFF_MIN_MS;
    }
    g->conf = conf;
    g->number = number;
    {
        static int logged = -1;
        char why[256];

        cr_steer_create(&g->steer, conf->nlisten, g->nworkers, why, sizeof(why));
        if ((int)g->steer.mode != logged) {
            logged = (int)g->steer.mode;
            if (g->steer.mode == CR_STEER_BPF) {
                cr_log_notice("reload mechanism: bpf (SK_REUSEPORT program steers new "
                              "connections to the newest generation)");
            } else {
                cr_log_warn("reload mechanism: %s (%s)%s", cr_steer_mode_name(g->steer.mode),
                            why, g->steer.mode == CR_STEER_DRAIN
                            ? "; connections racing an old worker's close may be reset: "
                              "run as root or set net.ipv4.tcp_migrate_req=1" : "");
            }
        }
    }
    return CR_OK;
}

/* Are all workers of <g> running and ready? */
static int
gen_ready(struct master *m, const struct gen *g)
{
    const struct proc *p;
    unsigned i;

    for (i = 0; i < g->nworkers; i++) {
        if (g->slots[i].pid == 0) {
            return 0;
        }
        p = proc_find(m, g->slots[i].pid);
        if (p == NULL || (p->flags & PROC_F_READY) == 0) {
            return 0;
        }
    }
    return 1;
}

/*
 * The child side of fork(): undo the master's signal setup before anything
 * else, make sure we die with the master, drop the master's fds, and run
 * the worker. Never returns.
 */
static void child_reset(struct master *m);

static void
child_main(struct master *m, const struct gen *g, unsigned id, int ready_fd,
           int shm_slot)
{
    child_reset(m);
    cr_stats_attach(m->shm.hdr, shm_slot);
    cr_stats_set_state(CR_SHM_SLOT_STARTING);
    _exit(cr_worker_run(g->conf, id, g->number, ready_fd, &g->steer));
}

/* Signals back to defaults, die with the master, drop the master's fds. */
static void
child_reset(struct master *m)
{
    static const int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT,
                                SIGPIPE };
    struct sigaction sa;
    sigset_t none;
    size_t i;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < CR_NELEM(sigs); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
    /* a reopen sent before the worker watches SIGUSR1 must not kill it */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR1, &sa, NULL);

    /* a SIGKILLed master must not leave workers behind: they drain */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1) {
        cr_log_warn("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    }
    if (getppid() != m->pid) {
        _exit(CR_EXIT_OK);                  /* the master died meanwhile */
    }

    close(m->sigfd);
    for (i = 0; i < m->nprocs; i++) {
        if (m->procs[i].ready_fd != -1) {
            close(m->procs[i].ready_fd);
        }
    }

}

/* Does the current config want helper <h> to run? */
static int
helper_wanted(const struct master *m, const struct helper *h)
{
    const struct cr_conf *conf = m->cur.conf;

    if (conf == NULL || m->shm.hdr == NULL || m->phase == PHASE_STOPPING) {
        return 0;
    }
    return h == &m->admin ? conf->admin.text != NULL : cr_health_wanted(conf);
}

/*
 * Give what the workers use to conf's user: and group: before they start:
 * the stats segment (mode stats.mode, 0640 by default: corralctl works for
 * that group and nobody else) and the access log file, created if missing.
 * Only root can give files away; a master that is not root already runs as
 * that user, which cr_worker_drop_privileges() checks. Returns CR_OK, or
 * CR_ERR (logged).
 */
static int
own_files(struct master *m, const struct cr_conf *conf)
{
    const struct cr_conf_identity *id = &conf->identity;
    char err[256], path[sizeof(m->shm.path) + 16];

    if (cr_worker_drop_privileges(conf, 1, err, sizeof(err)) != CR_OK) {
        cr_log_error("%s", err);
        return CR_ERR;
    }
    if (m->shm.hdr != NULL && (id->user != NULL || id->group != NULL) && geteuid() == 0) {
        snprintf(path, sizeof(path), "/dev/shm%s", m->shm.path);
        if (chown(path, id->user != NULL ? id->uid : (uid_t)-1, id->gid) == -1) {
            cr_log_error("stats segment %s: chown: %s", path, strerror(errno));
            return CR_ERR;
        }
    }
    if (cr_access_log_prepare(conf, err, sizeof(err)) != CR_OK) {
        cr_log_error("%s", err);
        return CR_ERR;
    }
    return CR_OK;
}

/* SIGUSR1: new log files first, then every worker reopens its own. */
static void
reopen_logs(struct master *m)
{
    size_t i;

    if (m->cur.conf->access_log.path == NULL) {
        cr_log_notice("SIGUSR1: no access log to reopen");
        return;
    }
    if (own_files(m, m->cur.conf) != CR_OK) {
        return;
    }
    for (i = 0; i < m->nprocs; i++) {
        kill(m->procs[i].pid, SIGUSR1);
    }
    cr_log_notice("SIGUSR1: %zu workers reopen %s", m->nprocs, m->cur.conf->access_log.path);
}

/*
 * Start helper <h> if the current config has a use for it. The admin
 * listener reads the stats segment only; the health checker writes the
 * active-check fields of its server rows. If one dies it is started again
 * a second later.
 */
static void
helper_spawn(struct master *m, struct helper *h)
{
    const struct cr_conf *conf = m->cur.conf;
    pid_t pid;

    h->respawn_ms = 0;
    if (!helper_wanted(m, h)) {
        return;
    }
    pid = fork();
    if (pid == -1) {
        cr_log_error("%s: fork: %s", h->name, strerror(errno));
        h->respawn_ms = now_ms() + 1000;
        return;
    }
    if (pid == 0) {
        child_reset(m);
        _exit(h == &m->admin ? cr_admin_run(conf, m->shm.hdr)
                             : cr_health_run(conf, m->shm.hdr));
    }
    h->pid = pid;
    if (h == &m->admin) {
        free(m->admin_addr);
        m->admin_addr = strdup(conf->admin.text);
    }
    cr_log_info("%s started: pid %d", h->name, (int)pid);
}

/*
 * After a reload: restart the admin process if its address changed, and
 * the health checker always (servers and checks may have changed; the
 * verdicts stay in shm). reap() starts the new ones.
 */
static void
helpers_reconfigure(struct master *m)
{
    const char *want = m->cur.conf->admin.text;

    if (m->admin.pid != 0) {
        if (want == NULL || m->admin_addr == NULL || strcmp(want, m->admin_addr) != 0) {
            kill(m->admin.pid, SIGTERM);
        }
    } else {
        helper_spawn(m, &m->admin);
    }
    if (m->health.pid != 0) {
        kill(m->health.pid, SIGTERM);
    } else {
        cr_health_reset(m->cur.conf, m->shm.hdr);
        helper_spawn(m, &m->health);
    }
}

/* Reap helper <h>, which exited with <status>. */
static void
helper_exited(struct master *m, struct helper *h, int status)
{
    char how[96];

    h->pid = 0;
    if (m->phase == PHASE_STOPPING) {
        return;
    }
    describe_status(status, how, sizeof(how));
    cr_log_info("%s exited (%s)", h->name, how);
    if (h == &m->health && !helper_wanted(m, h)) {
        /* a reload removed every check: forget the last verdicts */
        cr_health_reset(m->cur.conf, m->shm.hdr);
    }
    /* a clean exit was asked for by a reload: no delay */
    h->respawn_ms = now_ms() + (WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 1 : 1000);
}

/* Stop helper <h> and wait for it (the master is exiting). */
static void
helper_stop(struct helper *h)
{
    int st;

    if (h->pid != 0) {
        kill(h->pid, SIGTERM);
        waitpid(h->pid, &st, 0);
        h->pid = 0;
    }
}

/* Fork worker <id> of <g>. Returns CR_OK or CR_ERR (logged). */
static int
spawn(struct master *m, struct gen *g, unsigned id)
{
    struct proc *p, *procs;
    size_t cap;
    int fds[2], shm_slot = -1;
    pid_t pid;

    if (m->nprocs == m->procs_cap) {
        cap = m->procs_cap > 0 ? m->procs_cap * 2 : 16;
        procs = realloc(m->procs, cap * sizeof(*procs));
        if (procs == NULL) {
            cr_log_error("worker %u: out of memory", id);
            return CR_ERR;
        }
        m->procs = procs;
        m->procs_cap = cap;
    }

    if (pipe2(fds, O_CLOEXEC) == -1) {
        cr_log_error("worker %u: pipe: %s", id, strerror(errno));
        return CR_ERR;
    }
    if (m->shm.hdr != NULL) {
        shm_slot = cr_shm_slot_alloc(m->shm.hdr, g->number, id);
        if (shm_slot == -1) {
            cr_log_warn("worker %u: no free stats slot; it will not be counted", id);
        }
    }
    pid = fork();
    if (pid == -1) {
        cr_log_error("worker %u: fork: %s", id, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        if (shm_slot != -1) {
            cr_shm_slot_retire(m->shm.hdr, shm_slot);
        }
        return CR_ERR;
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(m, g, id, fds[1], shm_slot);
    }

    close(fds[1]);
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1) {
        cr_log_warn("%s: fcntl(O_NONBLOCK): %s", __func__, strerror(errno));
    }
    p = &m->procs[m->nprocs++];
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    p->id = id;
    p->generation = g->number;
    p->ready_fd = fds[0];
    p->shm_slot = shm_slot;
    p->started_ms = now_ms();
    p->deadline_ms = p->started_ms + MASTER_READY_MS;
    g->slots[id].pid = pid;
    g->slots[id].respawn_ms = 0;
    cr_log_info("worker %u started: pid %d, generation %u", id, (int)pid, g->number);
    return CR_OK;
}

/*
 * Stop every worker with <sig> and leave the loop once they are gone, with
 * exit status <status>. SIGQUIT during a graceful stop speeds it up; other
 * repeats are ignored. A reload in progress is abandoned.
 */
static void
begin_stop(struct master *m, int sig, int status)
{
    uint64_t timeout;
    size_t i;

    if (m->phase == PHASE_STOPPING && (sig != SIGQUIT || m->stop_sig == SIGQUIT)) {
        return;
    }
    if (m->phase != PHASE_STOPPING) {
        m->status = status;
    }
    m->phase = PHASE_STOPPING;
    m->stop_sig = sig;

    if (sig == SIGQUIT) {
        timeout = MASTER_QUIT_MS;
    } else {
        timeout = m->cur.conf->drain_timeout_ms;
        if (m->next.conf != NULL && m->next.conf->drain_timeout_ms > timeout) {
            timeout = m->next.conf->drain_timeout_ms;
        }
        timeout += MASTER_KILL_GRACE_MS;
    }
    m->give_up_ms = now_ms() + timeout + MASTER_GIVE_UP_MS;

    cr_log_notice("%s stop: signalling %zu workers", sig == SIGQUIT ? "fast" : "graceful",
                  m->nprocs);
    for (i = 0; i < m->nprocs; i++) {
        proc_stop(&m->procs[i], sig, timeout);
    }
    if (m->next.conf != NULL) {
        gen_free(&m->next);
    }
}

/* Record an unexpected exit; returns 1 if that makes a crash loop. */
static int
crash_loop(struct master *m)
{
    uint64_t now = now_ms(), oldest;
    size_t n = CR_NELEM(m->crash_ms);

    m->crash_ms[m->ncrashes % n] = now;
    m->ncrashes++;
    if (m->ncrashes < n) {
        return 0;
    }
    oldest = m->crash_ms[m->ncrashes % n];
    return now - oldest <= MASTER_CRASH_WINDOW_MS;
}

/* The new generation cannot serve: stop it, keep the current one. */
static void
abort_reload(struct master *m, const char *why)
{
    uint64_t timeout = m->next.conf->drain_timeout_ms + MASTER_KILL_GRACE_MS;
    size_t i;

    cr_log_error("reload failed: generation %u: %s; keeping generation %u",
                 m->next.number, why, m->cur.number);
    publish_reload_failure(m, why);
    for (i = 0; i < m->nprocs; i++) {
        if (m->procs[i].generation == m->next.number) {
            proc_stop(&m->procs[i], SIGTERM, timeout);
        }
    }
    gen_free(&m->next);
}

/* Every worker of the new generation listens: retire the older ones. */
static void
commit_reload(struct master *m)
{
    uint64_t timeout = m->cur.conf->drain_timeout_ms + MASTER_KILL_GRACE_MS;
    unsigned old = m->cur.number;
    size_t i, n = 0;

    for (i = 0; i < m->nprocs; i++) {
        if (m->procs[i].generation != m->next.number
            && (m->procs[i].flags & PROC_F_STOPPING) == 0)
        {
            proc_stop(&m->procs[i], SIGTERM, timeout);
            n++;
        }
    }
    gen_free(&m->cur);
    m->cur = m->next;
    memset(&m->next, 0, sizeof(m->next));
    publish_config(m, m->cur.conf, m->cur.number);
    if (m->shm.hdr != NULL) {
        __atomic_add_fetch(&m->shm.hdr->reloads_ok, 1, __ATOMIC_RELEASE);
    }
    helpers_reconfigure(m);
    cr_log_notice("reload: generation %u serving (%u workers); draining %zu workers "
                  "of generation %u", m->cur.number, m->cur.nworkers, n, old);
}

/* SIGHUP, once the master is idle: load the file again and start a generation. */
static void
reload(struct master *m)
{
    struct cr_conf_errs errs = { NULL, 0 };
    struct cr_conf *conf;
    unsigned i;
    size_t e;

    cr_log_notice("reload: loading %s", m->path);
    conf = cr_conf_load(m->path, &errs);
    if (conf == NULL) {
        for (e = 0; e < errs.n; e++) {
            cr_log_error("%s", errs.msgs[e]);
        }
        publish_reload_failure(m, errs.n > 0 ? errs.msgs[0] : "cannot load the file");
        cr_conf_errs_free(&errs);
        cr_log_error("reload failed, keeping generation %u", m->cur.number);
        return;
    }
    cr_conf_errs_free(&errs);
    if (strcmp(conf->name, m->cur.conf->name) != 0) {
        cr_log_warn("reload: instance name \"%s\" kept; a new name (\"%s\") takes a "
                    "restart", m->cur.conf->name, conf->name);
    }
    assign_rows(m, conf);
    if (own_files(m, conf) != CR_OK) {
        publish_reload_failure(m, "cannot prepare the files workers use (see the log)");
        cr_conf_free(conf);
        cr_log_error("reload failed, keeping generation %u", m->cur.number);
        return;
    }

    if (gen_init(&m->next, conf, m->last_gen + 1) != CR_OK) {
        cr_log_error("reload: out of memory; keeping generation %u", m->cur.number);
        return;
    }
    m->last_gen++;
    cr_log_notice("reload: starting generation %u (%u workers)", m->next.number,
                  m->next.nworkers);
    for (i = 0; i < m->next.nworkers; i++) {
        if (spawn(m, &m->next, i) != CR_OK) {
            abort_reload(m, "cannot start a worker");
            return;
        }
    }
}

/* Data or EOF on <p>'s readiness pipe. */
static void
on_ready_fd(struct master *m, struct proc *p)
{
    ssize_t n;
    char c;

    n = read(p->ready_fd, &c, 1);
    if (n == -1) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }
        cr_log_warn("worker %u (pid %d): ready pipe: %s", p->id, (int)p->pid, strerror(errno));
    }
    close(p->ready_fd);
    p->ready_fd = -1;
    if (n != 1) {
        return;                             /* EOF: it exits; SIGCHLD follows */
    }

    p->flags |= PROC_F_READY;
    if (p->flags & PROC_F_STOPPING) {
        return;
    }
    cr_log_info("worker %u ready: pid %d, generation %u, %llu ms", p->id, (int)p->pid,
                p->generation, (unsigned long long)(now_ms() - p->started_ms));

    if (m->next.conf != NULL && p->generation == m->next.number) {
        if (gen_ready(m, &m->next)) {
            commit_reload(m);
        }
    } else if (m->phase == PHASE_STARTING && p->generation == m->cur.number) {
        if (gen_ready(m, &m->cur)) {
            m->phase = PHASE_RUNNING;
            cr_log_notice("generation %u serving (%u workers)", m->cur.number,
                          m->cur.nworkers);
        }
    }
}

/* waitpid() said <pid> ended with <status>. */
static void
worker_exited(struct master *m, pid_t pid, int status)
{
    struct proc *pp, p;
    struct slot *slot;
    char how[96];
    uint64_t lived;

    pp = proc_find(m, pid);
    if (pp == NULL) {
        return;                             /* not one of our workers */
    }
    p = *pp;
    proc_remove(m, pp);
    if (p.shm_slot != -1 && m->shm.hdr != NULL) {
        /* its process is gone: fold its counts into the retired totals */
        cr_shm_slot_retire(m->shm.hdr, p.shm_slot);
    }
    describe_status(status, how, sizeof(how));
    lived = now_ms() - p.started_ms;

    if (p.flags & PROC_F_STOPPING) {
        cr_log_notice("worker %u exited: pid %d, generation %u, %s", p.id, (int)p.pid,
                      p.generation, how);
        return;
    }
    cr_log_warn("worker %u exited unexpectedly: pid %d, generation %u, %s, after %llu ms",
                p.id, (int)p.pid, p.generation, how, (unsigned long long)lived);

    if (m->next.conf != NULL && p.generation == m->next.number) {
        m->next.slots[p.id].pid = 0;
        abort_reload(m, (p.flags & PROC_F_READY) ? "a new worker exited"
                                                  : "a new worker exited before it was ready");
        return;
    }
    if (p.generation != m->cur.number || m->phase == PHASE_STOPPING) {
        return;
    }

    slot = &m->cur.slots[p.id];
    slot->pid = 0;

    if (m->phase == PHASE_STARTING && (p.flags & PROC_F_READY) == 0
        && WIFEXITED(status) && WEXITSTATUS(status) == CR_EXIT_SETUP)
    {
        cr_log_error("worker %u could not set up (see its error above); stopping", p.id);
        begin_stop(m, SIGTERM, 1);
        return;
    }
    if (crash_loop(m)) {
        cr_log_error("crash loop: %d unexpected worker exits within %d s (%zu since "
                     "start; last: worker %u, pid %d, %s); stopping",
                     MASTER_CRASH_MAX + 1, MASTER_CRASH_WINDOW_MS / 1000, m->ncrashes,
                     p.id, (int)p.pid, how);
        begin_stop(m, SIGTERM, 1);
        return;
    }

    if (lived >= MASTER_STABLE_MS) {
        slot->backoff_ms = MASTER_BACKOFF_MIN_MS;
    }
    slot->respawn_ms = now_ms() + slot->backoff_ms;
    cr_log_notice("worker %u: respawning in %llu ms", p.id,
                  (unsigned long long)slot->backoff_ms);
    slot->backoff_ms *= 2;
    if (slot->backoff_ms > MASTER_BACKOFF_MAX_MS) {
        slot->backoff_ms = MASTER_BACKOFF_MAX_MS;
    }
}

static void
reap(struct master *m)
{
    pid_t pid;
    int status;

    for (;;) {
        pid = waitpid(-1, &status, WNOHANG);
        if (pid == 0) {
            return;
        }
        if (pid == -1) {
            if (errno == EINTR) {
                continue;
            }
            return;                         /* ECHILD: nobody left */
        }
        if (pid == m->admin.pid || pid == m->health.pid) {
            helper_exited(m, pid == m->admin.pid ? &m->admin : &m->health, status);
            continue;
        }
        worker_exited(m, pid, status);
    }
}

/* <p> did not write its ready byte in time. */
static void
on_ready_timeout(struct master *m, struct proc *p)
{
    char why[96];

    snprintf(why, sizeof(why), "worker %u (pid %d) not ready after %d ms", p->id,
             (int)p->pid, MASTER_READY_MS);
    if (m->next.conf != NULL && p->generation == m->next.number) {
        abort_reload(m, why);
    } else if (m->phase == PHASE_STARTING) {
        cr_log_error("%s; stopping", why);
        begin_stop(m, SIGTERM, 1);
    } else {
        /* a respawn that hangs: its exit counts as a crash */
        cr_log_error("%s; killing it", why);
        kill(p->pid, SIGKILL);
        p->flags |= PROC_F_KILLED;
    }
}

/*
 * A worker whose loop stopped turning (stuck in a blocking call, stopped,
 * spinning) no longer refreshes its heartbeat: replace it. The exit that
 * follows is an unexpected one, so it is respawned and counted as a crash.
 */
static void
check_heartbeats(struct master *m, uint64_t now)
{
    struct cr_shm_header *h = m->shm.hdr;
    size_t i;

    if (h == NULL) {
        return;
    }
    for (i = 0; i < m->nprocs; i++) {
        struct proc *p = &m->procs[i];
        uint64_t beat;

        if (p->shm_slot == -1 || (p->flags & (PROC_F_READY | PROC_F_KILLED)) != PROC_F_READY) {
            continue;
        }
        beat = cr_shm_get(&cr_shm_slot(h, (unsigned)p->shm_slot)->heartbeat_ms);
        if (beat != 0 && now > beat + MASTER_HEARTBEAT_MS) {
            cr_log_error("worker %u (pid %d, generation %u): no heartbeat for %llu ms, "
                         "its event loop is stuck; killing it", p->id, (int)p->pid,
                         p->generation, (unsigned long long)(now - beat));
            kill(p->pid, SIGKILL);
            p->flags |= PROC_F_KILLED;
        }
    }
}

/* Deadlines: readiness timeouts, SIGKILLs, respawns. */
static void
run_timers(struct master *m)
{
    uint64_t now = now_ms();
    struct proc *p;
    size_t i;

    check_heartbeats(m, now);

    for (i = 0; i < m->nprocs; i++) {
        p = &m->procs[i];
        if ((p->flags & PROC_F_KILLED) || now < p->deadline_ms) {
            continue;
        }
        if (p->flags & PROC_F_STOPPING) {
            cr_log_warn("worker %u (pid %d, generation %u) still running, killing it",
                        p->id, (int)p->pid, p->generation);
            kill(p->pid, SIGKILL);
            p->flags |= PROC_F_KILLED;
        } else if ((p->flags & PROC_F_READY) == 0) {
            on_ready_timeout(m, p);
        }
    }

    if (m->phase == PHASE_STOPPING) {
        return;
    }
    if (m->admin.pid == 0 && m->admin.respawn_ms != 0 && now >= m->admin.respawn_ms) {
        helper_spawn(m, &m->admin);
    }
    if (m->health.pid == 0 && m->health.respawn_ms != 0 && now >= m->health.respawn_ms) {
        helper_spawn(m, &m->health);
    }
    for (i = 0; i < m->cur.nworkers; i++) {
        struct slot *s = &m->cur.slots[i];

        if (s->pid != 0 || s->respawn_ms == 0 || now < s->respawn_ms) {
            continue;
        }
        if (spawn(m, &m->cur, (unsigned)i) != CR_OK) {
            s->respawn_ms = now + s->backoff_ms;
        }
    }
}

/* Milliseconds until the nearest deadline, at most MASTER_POLL_MAX_MS. */
static int
poll_timeout(struct master *m)
{
    uint64_t now = now_ms(), next = now + MASTER_POLL_MAX_MS;
    size_t i;

    for (i = 0; i < m->nprocs; i++) {
        const struct proc *p = &m->procs[i];

        if ((p->flags & PROC_F_KILLED) == 0
            && ((p->flags & PROC_F_STOPPING) || (p->flags & PROC_F_READY) == 0)
            && p->deadline_ms < next)
        {
            next = p->deadline_ms;
        }
    }
    for (i = 0; i < m->cur.nworkers; i++) {
        const struct slot *s = &m->cur.slots[i];

        if (s->pid == 0 && s->respawn_ms != 0 && s->respawn_ms < next) {
            next = s->respawn_ms;
        }
    }
    if (m->phase == PHASE_STOPPING && m->give_up_ms < next) {
        next = m->give_up_ms;
    }
    if (m->admin.pid == 0 && m->admin.respawn_ms != 0 && m->admin.respawn_ms < next) {
        next = m->admin.respawn_ms;
    }
    if (m->health.pid == 0 && m->health.respawn_ms != 0 && m->health.respawn_ms < next) {
        next = m->health.respawn_ms;
    }
    return next > now ? (int)(next - now) : 0;
}

static void
on_signal(struct master *m, int sig)
{
    switch (sig) {
    case SIGCHLD:
        reap(m);
        break;
    case SIGHUP:
        if (m->phase != PHASE_STOPPING) {
            cr_log_notice("SIGHUP: reload requested");
            m->reload_queued = 1;
        }
        break;
    case SIGTERM:
    case SIGINT:
        if (m->phase == PHASE_STOPPING && sig == SIGINT && m->stop_sig == SIGTERM) {
            /* a second Ctrl-C: do not wait for the drain */
            cr_log_notice("SIGINT again: fast stop");
            begin_stop(m, SIGQUIT, m->status);
        } else if (m->phase != PHASE_STOPPING) {
            cr_log_notice("%s: graceful stop", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            begin_stop(m, SIGTERM, 0);
        }
        break;
    case SIGQUIT:
        cr_log_notice("SIGQUIT: fast stop");
        begin_stop(m, SIGQUIT, m->phase == PHASE_STOPPING ? m->status : 0);
        break;
    case SIGUSR1:
        reopen_logs(m);
        break;
    default:
        break;
    }
}

static void
read_signals(struct master *m)
{
    struct signalfd_siginfo si;
    ssize_t n;

    for (;;) {
        n = read(m->sigfd, &si, sizeof(si));
        if (n != (ssize_t)sizeof(si)) {
            if (n == -1 && errno == EINTR) {
                continue;
            }
            return;
        }
        on_signal(m, (int)si.ssi_signo);
    }
}

/* The master's loop; returns its exit status. */
static int
loop(struct master *m)
{
    struct pollfd *pfds = NULL, *tmp;
    pid_t *pids = NULL, *tmp_pids;
    size_t cap = 0, n, i;
    struct proc *p;
    int rc = 1;

    for (;;) {
        if (m->phase == PHASE_STOPPING) {
            if (m->nprocs == 0) {
                rc = m->status;
                break;
            }
            if (now_ms() >= m->give_up_ms) {
                cr_log_error("%zu workers did not exit even after SIGKILL; giving up",
                             m->nprocs);
                rc = m->status != 0 ? m->status : 1;
                break;
            }
        } else if (m->phase == PHASE_RUNNING && m->reload_queued && m->next.conf == NULL) {
            m->reload_queued = 0;
            reload(m);
        }

        if (cap < m->nprocs + 1) {
            cap = m->nprocs + 16;
            tmp = realloc(pfds, cap * sizeof(*pfds));
            if (tmp == NULL) {
                cr_log_error("%s: out of memory", __func__);
                break;
            }
            pfds = tmp;
            tmp_pids = realloc(pids, cap * sizeof(*pids));
            if (tmp_pids == NULL) {
                cr_log_error("%s: out of memory", __func__);
                break;
            }
            pids = tmp_pids;
        }
        pfds[0].fd = m->sigfd;
        pfds[0].events = POLLIN;
        pfds[0].revents = 0;
        n = 1;
        for (i = 0; i < m->nprocs; i++) {
            if (m->procs[i].ready_fd != -1) {
                pfds[n].fd = m->procs[i].ready_fd;
                pfds[n].events = POLLIN;
                pfds[n].revents = 0;
                pids[n] = m->procs[i].pid;
                n++;
            }
        }

        if (poll(pfds, n, poll_timeout(m)) == -1 && errno != EINTR) {
            cr_log_error("poll: %s", strerror(errno));
            break;
        }

        /* readiness first: a byte and an exit may arrive together */
        for (i = 1; i < n; i++) {
            if (pfds[i].revents == 0) {
                continue;
            }
            p = proc_find(m, pids[i]);
            if (p != NULL && p->ready_fd != -1) {
                on_ready_fd(m, p);
            }
        }
        if (pfds[0].revents != 0) {
            read_signals(m);
        }
        reap(m);
        run_timers(m);
    }

    free(pfds);
    free(pids);
    return rc;
}

/*
 * Only after a fatal loop error or a give-up: SIGKILL whatever is left.
 * Don't wait for it; a process that survived SIGKILL once will not die
 * because we wait longer.
 */
static void
kill_all(struct master *m)
{
    size_t i;

    for (i = 0; i < m->nprocs; i++) {
        kill(m->procs[i].pid, SIGKILL);
    }
    reap(m);
}

int
cr_master_run(const char *path, struct cr_conf *conf)
{
    struct master m;
    struct sigaction sa;
    unsigned i;
    int rc = 1;

    memset(&m, 0, sizeof(m));
    m.path = path;
    m.pid = getpid();
    m.sigfd = -1;
    m.admin.name = "admin listener";
    m.health.name = "health checker";
    cr_log_set_role("master");

    if (gen_init(&m.cur, conf, 1) != CR_OK) {
        cr_log_error("out of memory");
        return 1;
    }
    m.last_gen = 1;

    /* stderr may be a pipe whose reader went away: report EPIPE, don't die */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);

    sigemptyset(&m.sigs);
    sigaddset(&m.sigs, SIGCHLD);
    sigaddset(&m.sigs, SIGHUP);
    sigaddset(&m.sigs, SIGTERM);
    sigaddset(&m.sigs, SIGINT);
    sigaddset(&m.sigs, SIGQUIT);
    sigaddset(&m.sigs, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &m.sigs, NULL) == -1) {
        cr_log_error("sigprocmask: %s", strerror(errno));
        goto fail;
    }
    /*
     * A signal whose disposition is SIG_IGN is discarded, never queued to
     * the signalfd: a shell starting us in the background ignores SIGINT
     * and SIGQUIT, and an ignored SIGCHLD would even reap our workers for
     * us. Blocked first, so SIG_DFL cannot act in between.
     */
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    m.sigfd = signalfd(-1, &m.sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m.sigfd == -1) {
        cr_log_error("signalfd: %s", strerror(errno));
        goto fail;
    }

    {
        struct cr_shm_sizes sz;
        char err[256];
        size_t nservers = count_servers(conf);

        memset(&sz, 0, sizeof(sz));
        sz.workers = m.cur.nworkers;
        sz.routes_cap = (unsigned)(conf->nroutes * 2 > 64 ? conf->nroutes * 2 : 64);
        sz.servers_cap = (unsigned)(nservers * 2 > 64 ? nservers * 2 : 64);
        if (cr_shm_create(&m.shm, conf->name, &sz, conf->stats_mode, err,
                          sizeof(err)) != CR_OK)
        {
            cr_log_error("stats segment: %s", err);
            goto fail;
        }
        assign_rows(&m, conf);
        publish_config(&m, conf, m.cur.number);
        cr_log_info("stats segment /dev/shm%s: %zu bytes, %u slots", m.shm.path,
                    m.shm.size, m.shm.hdr->nslots);
    }
    if (own_files(&m, conf) != CR_OK) {
        goto fail;
    }

    cr_log_notice("corral starting: %s, %u workers, generation %u", path,
                  m.cur.nworkers, m.cur.number);
    for (i = 0; i < m.cur.nworkers; i++) {
        if (spawn(&m, &m.cur, i) != CR_OK) {
            begin_stop(&m, SIGTERM, 1);
            break;
        }
    }

    helper_spawn(&m, &m.admin);
    helper_spawn(&m, &m.health);
    rc = loop(&m);
    helper_stop(&m.admin);
    helper_stop(&m.health);
    kill_all(&m);
    cr_log_notice("exiting with status %d", rc);

fail:
    /* the signals stay blocked: a late SIGTERM must not change our status */
    if (m.sigfd != -1) {
        close(m.sigfd);
    }
    if (m.shm.hdr != NULL) {
        cr_shm_unlink(&m.shm);
        cr_shm_detach(&m.shm);
    }
    gen_free(&m.next);
    gen_free(&m.cur);
    free(m.procs);
    free(m.admin_addr);
    return rc;
}
