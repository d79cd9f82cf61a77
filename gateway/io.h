/*
 * io.h - a socket with lazily made buffers, for client and upstream sides.
 *
 * What a bufferevent does, minus what costs on every request:
 *
 *   - no FIONREAD before each read, no epoll_ctl around each write: output
 *     is written by the loop's flush event in the same iteration it was
 *     queued (event_active, no syscall), so a head and body queued by
 *     several calls leave in one writev; EPOLLOUT is asked for only when
 *     the kernel's buffer is full;
 *   - level-triggered reads that stay registered for the life of the
 *     socket unless the owner pauses them;
 *   - buffers made on first use and freed once empty, so an idle
 *     keep-alive connection holds one struct event and a few words;
 *   - no callbacks of its own: the owner gives one libevent callback for
 *     the socket, calls cr_io_handle() from it and acts on the returned
 *     CR_IO_R_* bits. The owner struct embeds struct cr_io.
 *
 * Semantics kept from bufferevents: a read timeout is an inactivity
 * timeout that runs only while reading is enabled; a write timeout runs
 * only while output waits for the socket; CR_IO_R_DRAINED reports a write
 * that left at most CR_IO_LOW_WATER bytes queued.
 */
#ifndef CR_IO_H
#define CR_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "timer.h"

struct evbuffer;
struct cr_io_rtimer;

#define CR_IO_LOW_WATER     (64 * 1024)     /* DRAINED at or below this */
#define CR_IO_READ_CHUNK    (16 * 1024 - 128)   /* a first read (fits 16 KiB) */
#define CR_IO_READ_BIG      (64 * 1024 - 128)   /* reads while streaming */

/* What cr_io_handle() found. */
#define CR_IO_R_DATA        0x01u   /* new input is buffered */
#define CR_IO_R_EOF         0x02u   /* the peer closed its side */
#define CR_IO_R_ERROR       0x04u   /* socket error (cr_io.err) */
#define CR_IO_R_RTIMEOUT    0x08u   /* nothing read for the read timeout */
#define CR_IO_R_WTIMEOUT    0x10u   /* output stuck for the write timeout */
#define CR_IO_R_DRAINED     0x20u   /* a write left <= CR_IO_LOW_WATER queued */
#define CR_IO_R_CONNECTED   0x40u   /* a connect finished */

#define CR_IO_COMMON_MAX    8   /* write timeouts as libevent common timeouts */
#define CR_IO_RLISTS_MAX    16  /* read timeout durations with a timer list */
#define CR_IO_SPARE_MAX     16  /* empty buffers kept for reuse */

/*
 * One per event base: the sockets with output to write in this iteration,
 * the read timeouts by duration (timer.h lists), a few empty buffers for
 * reuse, and the write timeouts in use as libevent common timeouts (io.c).
 */
struct cr_io_loop {
    struct event_base   *base;
    struct event         flush_ev;
    TAILQ_HEAD(, cr_io)  flush;
    size_t               nrlists;
    struct cr_tlist      rlists[CR_IO_RLISTS_MAX];
    size_t               nspare;
    struct evbuffer     *spare[CR_IO_SPARE_MAX];
    size_t               ncommon;
    uint32_t             common_ms[CR_IO_COMMON_MAX];
    struct timeval       common_tv[CR_IO_COMMON_MAX];
};

struct cr_io {
    struct cr_io_loop   *loop;
    TAILQ_ENTRY(cr_io)   flush_link;    /* while CR_IO_F_FLUSH */
    struct event         rev;       /* EV_READ|EV_PERSIST, owner's callback */
    struct event        *wev;       /* EV_WRITE|EV_PERSIST, made on first wait */
    struct cr_io_rtimer *rt;        /* read timeout on a loop->rlists list,
                                       only while one is set (io.c) */
    struct evbuffer     *in;        /* NULL until something is read */
    struct evbuffer     *out;       /* NULL when nothing is queued */
    uint32_t             read_max;  /* stop reading at this much input */
    uint32_t             rto_ms;    /* read timeout, 0 = none */
    uint32_t             wto_ms;    /* write/connect timeout, 0 = none */
    uint16_t             flags;     /* CR_IO_F_* (io.c) */
    int16_t              err;       /* errno of the last CR_IO_R_ERROR */
};

/* Set up <loop> on <base> (it must outlive every io on it). */
void cr_io_loop_init(struct cr_io_loop *loop, struct event_base *base);
void cr_io_loop_fini(struct cr_io_loop *loop);

/*
 * Make <io> own connected or connecting socket <fd> (non-blocking). <cb>
 * with <arg> gets every event of the socket; it must call cr_io_handle().
 * Reading starts disabled. Never fails.
 */
void cr_io_init(struct cr_io *io, struct cr_io_loop *loop, int fd,
                event_callback_fn cb, void *arg);

/* Close the socket and free everything <io> holds (not <io> itself). */
void cr_io_close(struct cr_io *io);

static inline int
cr_io_fd(const struct cr_io *io)
{
    return (int)event_get_fd(&io->rev);
}

/* Buffers, made on demand (NULL only when out of memory). */
struct evbuffer *cr_io_in(struct cr_io *io);
struct evbuffer *cr_io_out(struct cr_io *io);

size_t cr_io_in_len(const struct cr_io *io);
size_t cr_io_out_len(const struct cr_io *io);

/* Free the input buffer if it is empty (an idle connection). */
void cr_io_trim(struct cr_io *io);

/*
 * Bytes were added to cr_io_out(): write them later in this loop
 * iteration, together with anything else queued meanwhile. The owner's
 * callback is then called with EV_WRITE.
 */
void cr_io_flush_soon(struct cr_io *io);

/* Append and flush soon. Returns 0, or -1 when out of memory. */
int cr_io_write(struct cr_io *io, const void *data, size_t len);

/* Enable or pause reading (a paused socket is not polled for input). */
void cr_io_read(struct cr_io *io, int on);
int  cr_io_reading(const struct cr_io *io);

/*
 * The owner consumed input: if reading stopped because read_max bytes
 * were buffered, it goes on.
 */
void cr_io_consumed(struct cr_io *io);

/* Timeouts in ms (0 = none); they take effect at once. */
void cr_io_set_timeouts(struct cr_io *io, uint32_t read_ms, uint32_t write_ms);

/*
 * Start a non-blocking connect of <io>'s socket to <sa>; completion comes
 * as CR_IO_R_CONNECTED (or CR_IO_R_ERROR / CR_IO_R_WTIMEOUT, the write
 * timeout being the connect timeout). Returns 0, or -1 with errno set on
 * immediate failure.
 */
int cr_io_connect(struct cr_io *io, const struct sockaddr *sa, socklen_t len);

/*
 * Shut the write side once everything queued, and anything queued later,
 * is written: the FIN leaves with the last bytes (io.c, write_out()).
 */
void cr_io_shutdown_wr(struct cr_io *io);

/* Do the socket work event <what> calls for; returns CR_IO_R_* bits. */
unsigned cr_io_handle(struct cr_io *io, short what);

#endif /* CR_IO_H */
