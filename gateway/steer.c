/*
 * steer.c - steer new connections to the newest generation of workers.
 *
 * Why: closing a SO_REUSEPORT listener discards the connections in its own
 * accept queue and its half-open handshakes (without tcp_migrate_req), so
 * a reload that simply closes the old workers' sockets resets clients. The
 * cure is to stop new handshakes from reaching the old sockets *before*
 * they close, while keeping one socket per worker.
 *
 * How: each generation gets a BPF_MAP_TYPE_REUSEPORT_SOCKARRAY per listen
 * address, indexed by worker id, and a BPF_PROG_TYPE_SK_REUSEPORT program
 * that picks entry (4-tuple hash % nworkers) of that map. The program is
 * attached to the reuseport group by the generation's workers; attaching
 * replaces the previous generation's program in one step, so from then on
 * every SYN goes to the new generation. The old workers then accept what
 * is already queued (plus handshakes that were mid-flight), and close.
 * If an entry is empty (a worker being respawned) the program returns
 * SK_PASS without a choice and the kernel falls back to its own hash.
 *
 * The program is twelve instructions, written here as bytes so the build
 * needs no BPF compiler: it is simple enough to read in full below.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>

#include "conf/common.h"
#include "steer.h"

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif

#define INSN(c, d, s, o, i) \
    ((struct bpf_insn) { .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })

static long
sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

const char *
cr_steer_mode_name(enum cr_steer_mode mode)
{
    switch (mode) {
    case CR_STEER_BPF:      return "bpf";
    case CR_STEER_MIGRATE:  return "migrate";
    default:                return "drain";
    }
}

static int
map_create(unsigned nworkers)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_REUSEPORT_SOCKARRAY;
    attr.key_size = sizeof(uint32_t);
    attr.value_size = sizeof(uint64_t);
    attr.max_entries = nworkers;
    return (int)sys_bpf(BPF_MAP_CREATE, &attr);
}

/*
 *   r6 = r1                          ctx: struct sk_reuseport_md
 *   w2 = ctx->hash                   hash of the 4-tuple
 *   w2 %= nworkers
 *   *(u32 *)(r10 - 4) = w2           the key, on the stack
 *   r2 = map                         (64-bit immediate: the map's fd)
 *   r3 = r10 - 4
 *   r4 = 0
 *   r1 = r6
 *   call bpf_sk_select_reuseport(ctx, map, &key, 0)
 *   r0 = SK_PASS                     chosen, or the kernel's own choice
 *   exit
 */
static int
prog_load(int map_fd, unsigned nworkers, char *log, size_t loglen)
{
    struct bpf_insn insns[] = {
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0),
        INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_6,
             offsetof(struct sk_reuseport_md, hash), 0),
        INSN(BPF_ALU | BPF_MOD | BPF_K, BPF_REG_2, 0, 0, (int32_t)nworkers),
        INSN(BPF_STX | BPF_MEM | BPF_W, BPF_REG_10, BPF_REG_2, -4, 0),
        INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_2, BPF_PSEUDO_MAP_FD, 0, map_fd),
        INSN(0, 0, 0, 0, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_10, 0, 0),
        INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_3, 0, 0, -4),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_4, 0, 0, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_6, 0, 0),
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_select_reuseport),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, SK_PASS),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
    attr.expected_attach_type = BPF_SK_REUSEPORT_SELECT;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = (uint32_t)CR_NELEM(insns);
    attr.license = (uint64_t)(uintptr_t)"BSD";
    if (log != NULL && loglen > 0) {
        log[0] = '\0';
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = (uint32_t)loglen;
        attr.log_level = 1;
    }
    return (int)sys_bpf(BPF_PROG_LOAD, &attr);
}

static int
migrate_enabled(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r");
    int v = 0;

    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%d", &v) != 1) {
        v = 0;
    }
    fclose(f);
    return v == 1;
}

void
cr_steer_create(struct cr_steer *s, size_t nlisten, unsigned nworkers, char *why,
                size_t whylen)
{
    static char vlog[16384];
    size_t i;

    memset(s, 0, sizeof(*s));
    s->n = nlisten;
    s->nworkers = nworkers;
    why[0] = '\0';
    s->map_fd = malloc(nlisten * sizeof(int));
    s->prog_fd = malloc(nlisten * sizeof(int));
    if (s->map_fd == NULL || s->prog_fd == NULL || nworkers == 0) {
        snprintf(why, whylen, "out of memory");
        goto fallback;
    }
    for (i = 0; i < nlisten; i++) {
        s->map_fd[i] = -1;
        s->prog_fd[i] = -1;
    }
    for (i = 0; i < nlisten; i++) {
        s->map_fd[i] = map_create(nworkers);
        if (s->map_fd[i] == -1) {
            snprintf(why, whylen, "bpf map: %s", strerror(errno));
            goto fallback;
        }
        /* without a verifier log first: a log too small to hold it fails */
        s->prog_fd[i] = prog_load(s->map_fd[i], nworkers, NULL, 0);
        if (s->prog_fd[i] == -1) {
            int saved = errno;

            vlog[0] = '\0';
            if (prog_load(s->map_fd[i], nworkers, vlog, sizeof(vlog)) != -1) {
                vlog[0] = '\0';
            }
            vlog[strcspn(vlog, "\n")] = '\0';
            snprintf(why, whylen, "bpf program: %s%s%.200s", strerror(saved),
                     vlog[0] ? ": " : "", vlog);
            goto fallback;
        }
    }
    s->mode = CR_STEER_BPF;
    return;

fallback:
    cr_steer_free(s);
    s->n = nlisten;
    s->nworkers = nworkers;
    s->mode = migrate_enabled() ? CR_STEER_MIGRATE : CR_STEER_DRAIN;
}

void
cr_steer_free(struct cr_steer *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        if (s->map_fd != NULL && s->map_fd[i] != -1) {
            close(s->map_fd[i]);
        }
        if (s->prog_fd != NULL && s->prog_fd[i] != -1) {
            close(s->prog_fd[i]);
        }
    }
    free(s->map_fd);
    free(s->prog_fd);
    s->map_fd = NULL;
    s->prog_fd = NULL;
    s->n = 0;
}

int
cr_steer_join(const struct cr_steer *s, size_t i, unsigned id, int fd, char *err,
              size_t errlen)
{
    union bpf_attr attr;
    uint32_t key = id;
    uint64_t value = (uint64_t)fd;

    if (s->mode != CR_STEER_BPF || i >= s->n || id >= s->nworkers) {
        return CR_OK;
    }
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)s->map_fd[i];
    attr.key = (uint64_t)(uintptr_t)&key;
    attr.value = (uint64_t)(uintptr_t)&value;
    attr.flags = BPF_ANY;
    if (sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) == -1) {
        snprintf(err, errlen, "steering: add socket to map: %s", strerror(errno));
        return CR_ERR;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &s->prog_fd[i],
                   sizeof(s->prog_fd[i])) == -1)
    {
        snprintf(err, errlen, "steering: attach program: %s", strerror(errno));
        return CR_ERR;
    }
    return CR_OK;
}
