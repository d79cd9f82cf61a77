/*
 * io.c - sockets with lazily made buffers; see io.h.
 *
 * Syscalls per exchange are what nginx makes: one read per readable
 * event (no FIONREAD first), one writev per flush, and epoll_ctl only when
 * interest really changes (a full send buffer, a paused reader, a close).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "io.h"

#define CR_IO_F_READ        0x0001u /* the owner wants input */
#define CR_IO_F_RADDED      0x0002u /* rev is registered */
#define CR_IO_F_FULL        0x0004u /* read_max reached: not reading */
#define CR_IO_F_EOF         0x0008u /* read returned 0 */
#define CR_IO_F_WWAIT       0x0010u /* wev is registered */
#define CR_IO_F_FLUSH       0x0020u /* on loop->flush */
#define CR_IO_F_CONNECTING  0x0040u
#define CR_IO_F_SHUT        0x0080u /* shut the write side when empty */
#define CR_IO_F_SHUT_DONE   0x0100u
#define CR_IO_F_DEAD        0x0200u /* write failed: do not try again */
#define CR_IO_F_BIG         0x0400u /* read up to CR_IO_READ_BIG at once */
#define CR_IO_F_FILLED      0x0800u /* the last read filled its space */
#define CR_IO_F_EVTIMEOUT   0x1000u /* the read timeout is rev's own */

#define CR_IO_WRITE_VECS    64      /* pieces per write at most */

/*
 * <ms> as a timeval for event_add(). The few write timeouts a worker uses
 * become libevent "common timeouts": each is a FIFO queue instead of the
 * min-heap, so re-arming one is O(1).
 */
static void
ms_tv(struct cr_io_loop *loop, struct timeval *tv, uint32_t ms)
{
    const struct timeval *common;
    size_t i;

    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
    for (i = 0; i < loop->ncommon; i++) {
        if (loop->common_ms[i] == ms) {
            *tv = loop->common_tv[i];
            return;
        }
    }
    if (loop->ncommon < CR_IO_COMMON_MAX
        && (common = event_base_init_common_timeout(loop->base, tv)) != NULL)
    {
        loop->common_ms[loop->ncommon] = ms;
        loop->common_tv[loop->ncommon++] = *common;
        *tv = *common;
    }
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_io_loop *loop = arg;
    struct cr_io *io;

    (void)fd;
    (void)what;
    /*
     * Each owner callback may queue more output (on this or other
     * sockets) or close sockets, which take themselves off the list.
     */
    while ((io = TAILQ_FIRST(&loop->flush)) != NULL) {
        TAILQ_REMOVE(&loop->flush, io, flush_link);
        io->flags &= ~CR_IO_F_FLUSH;
        event_get_callback(&io->rev)(cr_io_fd(io), EV_WRITE,
                                     event_get_callback_arg(&io->rev));
    }
}

/*
 * Read timeouts. Every read event of a busy socket restarts its read
 * timeout, several times per request. A libevent timeout costs an
 * event_add() each time (about 300 instructions, even as a common
 * timeout); a timer.h list of the same duration costs an unlink and an
 * append. A worker has a few read timeouts (request body, each upstream's
 * read and try timeouts, idle upstream connections); past
 * CR_IO_RLISTS_MAX durations, or without memory for the timer, a read
 * timeout is rev's own libevent timeout.
 *
 * The timer is made when a read timeout starts and freed when the socket
 * has none any more: an idle client connection does not carry one.
 */
struct cr_io_rtimer {
    struct cr_timer      t;         /* first: rtimer_fire() gets &t */
    struct cr_io        *io;
};

/* The list's timer stopped <t> before this call: a read timeout fires once. */
static void
rtimer_fire(struct cr_timer *t)
{
    struct cr_io *io = ((struct cr_io_rtimer *)(void *)t)->io;

    event_get_callback(&io->rev)(cr_io_fd(io), EV_TIMEOUT, event_get_callback_arg(&io->rev));
}

static struct cr_tlist *
rlist(struct cr_io_loop *loop, uint32_t ms)
{
    size_t i;

    for (i = 0; i < loop->nrlists; i++) {
        if (loop->rlists[i].dur_ms == ms) {
            return &loop->rlists[i];
        }
    }
    if (loop->nrlists == CR_IO_RLISTS_MAX) {
        return NULL;
    }
    cr_tlist_init(&loop->rlists[loop->nrlists], loop->base, ms, rtimer_fire);
    return &loop->rlists[loop->nrlists++];
}

static void
rtimeout_stop(struct cr_io *io)
{
    if (io->rt != NULL) {
        cr_timer_stop(&io->rt->t);
    }
}

/* (Re)start the read timeout of <io>, whose rev is added; none if rto_ms is 0. */
static void
rtimeout_start(struct cr_io *io)
{
    struct cr_tlist *l = io->rto_ms ? rlist(io->loop, io->rto_ms) : NULL;
    struct timeval tv;

    if (l != NULL && io->rt == NULL && (io->rt = calloc(1, sizeof(*io->rt))) != NULL) {
        io->rt->io = io;
    }
    if (io->rto_ms == 0 || (l != NULL && io->rt != NULL)) {
        if (io->flags & CR_IO_F_EVTIMEOUT) {
            event_remove_timer(&io->rev);
            io->flags &= ~CR_IO_F_EVTIMEOUT;
        }
        if (l != NULL) {
            cr_timer_start(&io->rt->t, l);
        } else if (io->rt != NULL) {
            /* no read timeout now: an idle keep-alive client keeps no timer */
            cr_timer_stop(&io->rt->t);
            free(io->rt);
            io->rt = NULL;
        }
        return;
    }
    rtimeout_stop(io);
    ms_tv(io->loop, &tv, io->rto_ms);
    event_add(&io->rev, &tv);
    io->flags |= CR_IO_F_EVTIMEOUT;
}

/*
 * Buffers. A socket holds its buffers only while they hold bytes, so each
 * request takes and gives back about four; the loop keeps a few empty
 * ones for the next socket instead of an evbuffer_new() and
 * evbuffer_free() each time.
 */
static struct evbuffer *
buf_get(struct cr_io_loop *loop)
{
    if (loop->nspare > 0) {
        return loop->spare[--loop->nspare];
    }
    return evbuffer_new();
}

static void
buf_put(struct cr_io_loop *loop, struct evbuffer *b)
{
    if (b == NULL) {
        return;
    }
    if (loop->nspare < CR_IO_SPARE_MAX && evbuffer_get_length(b) == 0) {
        loop->spare[loop->nspare++] = b;
        return;
    }
    evbuffer_free(b);
}

void
cr_io_loop_init(struct cr_io_loop *loop, struct event_base *base)
{
    loop->base = base;
    loop->ncommon = 0;
    loop->nrlists = 0;
    loop->nspare = 0;
    TAILQ_INIT(&loop->flush);
    event_assign(&loop->flush_ev, base, -1, 0, flush_cb, loop);
}

void
cr_io_loop_fini(struct cr_io_loop *loop)
{
    size_t i;

    event_del(&loop->flush_ev);
    for (i = 0; i < loop->nrlists; i++) {
        cr_tlist_fini(&loop->rlists[i]);
    }
    loop->nrlists = 0;
    while (loop->nspare > 0) {
        evbuffer_free(loop->spare[--loop->nspare]);
    }
}

void
cr_io_init(struct cr_io *io, struct cr_io_loop *loop, int fd,
           event_callback_fn cb, void *arg)
{
    memset(io, 0, sizeof(*io));
    io->loop = loop;
    io->read_max = 64 * 1024;
    event_assign(&io->rev, loop->base, fd, EV_READ | EV_PERSIST, cb, arg);
}

void
cr_io_close(struct cr_io *io)
{
    int fd = cr_io_fd(io);

    if (io->flags & CR_IO_F_FLUSH) {
        TAILQ_REMOVE(&io->loop->flush, io, flush_link);
    }
    event_del(&io->rev);
    if (io->rt != NULL) {
        cr_timer_stop(&io->rt->t);
        free(io->rt);
        io->rt = NULL;
    }
    if (io->wev != NULL) {
        event_free(io->wev);
    }
    buf_put(io->loop, io->in);
    buf_put(io->loop, io->out);
    if (fd >= 0) {
        close(fd);
    }
    io->flags = 0;
    io->wev = NULL;
    io->in = io->out = NULL;
}

struct evbuffer *
cr_io_in(struct cr_io *io)
{
    if (io->in == NULL) {
        io->in = buf_get(io->loop);
    }
    return io->in;
}

struct evbuffer *
cr_io_out(struct cr_io *io)
{
    if (io->out == NULL) {
        io->out = buf_get(io->loop);
    }
    return io->out;
}

size_t
cr_io_in_len(const struct cr_io *io)
{
    return io->in != NULL ? evbuffer_get_length(io->in) : 0;
}

size_t
cr_io_out_len(const struct cr_io *io)
{
    return io->out != NULL ? evbuffer_get_length(io->out) : 0;
}

void
cr_io_trim(struct cr_io *io)
{
    if (io->in != NULL && evbuffer_get_length(io->in) == 0) {
        buf_put(io->loop, io->in);
        io->in = NULL;
    }
}

void
cr_io_flush_soon(struct cr_io *io)
{
    if (io->flags & (CR_IO_F_FLUSH | CR_IO_F_WWAIT | CR_IO_F_CONNECTING)) {
        return;     /* already due, or waiting for the socket anyway */
    }
    io->flags |= CR_IO_F_FLUSH;
    if (TAILQ_EMPTY(&io->loop->flush)) {
        event_active(&io->loop->flush_ev, EV_WRITE, 1);
    }
    TAILQ_INSERT_TAIL(&io->loop->flush, io, flush_link);
}

int
cr_io_write(struct cr_io *io, const void *data, size_t len)
{
    struct evbuffer *out = cr_io_out(io);

    if (out == NULL || evbuffer_add(out, data, len) == -1) {
        return -1;
    }
    cr_io_flush_soon(io);
    return 0;
}

/* Register rev as the flags want it. */
static void
read_update(struct cr_io *io)
{
    int want = (io->flags & CR_IO_F_READ)
               && !(io->flags & (CR_IO_F_FULL | CR_IO_F_EOF));

    if (want) {
        if (!(io->flags & CR_IO_F_RADDED)) {
            event_add(&io->rev, NULL);
            io->flags |= CR_IO_F_RADDED;
        }
        rtimeout_start(io);
    } else if (io->flags & CR_IO_F_RADDED) {
        event_del(&io->rev);
        rtimeout_stop(io);
        io->flags &= ~(CR_IO_F_RADDED | CR_IO_F_EVTIMEOUT);
    }
}

void
cr_io_read(struct cr_io *io, int on)
{
    if (on) {
        if ((io->flags & CR_IO_F_READ) && ((io->flags & CR_IO_F_RADDED) || io->flags
                                           & (CR_IO_F_FULL | CR_IO_F_EOF)))
        {
            return;         /* as it is; keep the running read timeout */
        }
        io->flags |= CR_IO_F_READ;
    } else {
        if (!(io->flags & CR_IO_F_READ)) {
            return;
        }
        io->flags &= ~CR_IO_F_READ;
    }
    read_update(io);
}

int
cr_io_reading(const struct cr_io *io)
{
    return (io->flags & CR_IO_F_READ) != 0;
}

void
cr_io_consumed(struct cr_io *io)
{
    if ((io->flags & CR_IO_F_FULL) && cr_io_in_len(io) < io->read_max) {
        io->flags &= ~CR_IO_F_FULL;
        read_update(io);
    }
}

/*
 * wev's events go to the owner's callback too, always with EV_WRITE set,
 * so that a timeout of wev (the write timeout) is told apart from one of
 * rev (the read timeout).
 */
static void
wev_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_io *io = arg;

    event_get_callback(&io->rev)(fd, (short)(what | EV_WRITE),
                                 event_get_callback_arg(&io->rev));
}

/* Make (once) and register wev, with the write timeout. */
static int
write_wait(struct cr_io *io)
{
    struct timeval tv;

    if (io->wev == NULL) {
        io->wev = event_new(io->loop->base, cr_io_fd(io), EV_WRITE | EV_PERSIST,
                            wev_cb, io);
        if (io->wev == NULL) {
            return -1;
        }
    }
    ms_tv(io->loop, &tv, io->wto_ms);
    if (!(io->flags & CR_IO_F_WWAIT) || io->wto_ms != 0) {
        event_add(io->wev, io->wto_ms ? &tv : NULL);
    }
    io->flags |= CR_IO_F_WWAIT;
    return 0;
}

static void
write_unwait(struct cr_io *io)
{
    if (io->flags & CR_IO_F_WWAIT) {
        event_del(io->wev);
        io->flags &= ~CR_IO_F_WWAIT;
    }
}

void
cr_io_set_timeouts(struct cr_io *io, uint32_t read_ms, uint32_t write_ms)
{
    uint32_t old_w = io->wto_ms;

    if (read_ms != io->rto_ms) {
        io->rto_ms = read_ms;
        if (io->flags & CR_IO_F_RADDED) {
            read_update(io);
        }
    }
    io->wto_ms = write_ms;
    if ((io->flags & CR_IO_F_WWAIT) && write_ms != old_w) {
        struct timeval tv;

        ms_tv(io->loop, &tv, write_ms);
        event_add(io->wev, write_ms ? &tv : NULL);
    }
}

int
cr_io_connect(struct cr_io *io, const struct sockaddr *sa, socklen_t len)
{
    if (connect(cr_io_fd(io), sa, len) == -1 && errno != EINPROGRESS) {
        return -1;
    }
    /* even an immediate success is reported from the loop, like the rest */
    io->flags |= CR_IO_F_CONNECTING;
    return write_wait(io);
}

void
cr_io_shutdown_wr(struct cr_io *io)
{
    if (io->flags & CR_IO_F_SHUT) {
        return;             /* done, or due once the queue is written */
    }
    io->flags |= CR_IO_F_SHUT;
    if (cr_io_out_len(io) == 0) {
        cr_io_flush_soon(io);
    }
}

/* Read once into the input buffer. */
static unsigned
do_read(struct cr_io *io)
{
    struct evbuffer_iovec vec[2];
    size_t room, have = cr_io_in_len(io);
    ssize_t n;
    int nvec;

    if (have >= io->read_max) {
        io->flags |= CR_IO_F_FULL;
        read_update(io);
        return 0;
    }
    room = io->read_max - have;
    /*
     * Small reads for small messages; once a read fills its space, a
     * body is streaming and the next reads take up to CR_IO_READ_BIG at
     * once. The big reads stay until two reads in a row come back short
     * and the second small: a connection that carries 20 KiB responses
     * then reads each in one go (head and body, so they go out in one
     * write), instead of a 16 KiB read and a tail.
     */
    if (!(io->flags & CR_IO_F_BIG) && room > CR_IO_READ_CHUNK) {
        room = CR_IO_READ_CHUNK;
    } else if (room > CR_IO_READ_BIG) {
        room = CR_IO_READ_BIG;
    }
    if (cr_io_in(io) == NULL) {
        return 0;           /* out of memory: try again on the next event */
    }
    nvec = evbuffer_reserve_space(io->in, (ev_ssize_t)room, vec, 2);
    if (nvec < 1) {
        return 0;
    }
    if (vec[0].iov_len >= room) {
        nvec = 1;
    }
    /* recv(2) for one piece: the socket path, without readv's iovec import */
    if (nvec == 1) {
        n = recv(cr_io_fd(io), vec[0].iov_base, vec[0].iov_len, 0);
    } else {
        n = readv(cr_io_fd(io), (struct iovec *)vec, nvec);
    }
    if (n > 0) {
        size_t left = (size_t)n;
        int i;

        for (i = 0; i < nvec; i++) {
            size_t take = left < vec[i].iov_len ? left : vec[i].iov_len;

            vec[i].iov_len = take;
            left -= take;
        }
        evbuffer_commit_space(io->in, vec, nvec);
        if ((size_t)n >= room) {
            io->flags |= CR_IO_F_BIG | CR_IO_F_FILLED;
        } else {
            if (!(io->flags & CR_IO_F_FILLED) && (size_t)n < CR_IO_READ_CHUNK / 2) {
                io->flags &= ~CR_IO_F_BIG;
            }
            io->flags &= ~CR_IO_F_FILLED;
        }
        return CR_IO_R_DATA;
    }
    evbuffer_commit_space(io->in, vec, 0);
    if (n == 0) {
        io->flags |= CR_IO_F_EOF;
        read_update(io);
        return CR_IO_R_EOF;
    }
    if (errno == EAGAIN || errno == EINTR) {
        return 0;
    }
    io->err = (int16_t)errno;
    io->flags |= CR_IO_F_EOF;
    read_update(io);
    return CR_IO_R_ERROR;
}

/*
 * One write of what is queued, up to CR_IO_WRITE_VECS pieces: send(2) when
 * it is a single piece (most responses to small requests, and each piece
 * of a streamed body), writev(2) otherwise.
 *
 * Once the write side is to be shut (CR_IO_F_SHUT), writes say MSG_MORE:
 * the kernel holds back a last part smaller than a segment, and the
 * shutdown() that do_write() makes when the queue is empty sends it with
 * the FIN in one segment, not a segment and then a lone FIN. Full-sized
 * segments still leave at once, and the shutdown pushes what is held.
 */
static ssize_t
write_out(struct cr_io *io)
{
    struct evbuffer_iovec vec[CR_IO_WRITE_VECS];
    int nvec = evbuffer_peek(io->out, -1, NULL, vec, CR_IO_WRITE_VECS);
    int more = (io->flags & CR_IO_F_SHUT) ? MSG_MORE : 0;
    ssize_t n;

    if (nvec > CR_IO_WRITE_VECS) {
        nvec = CR_IO_WRITE_VECS;
    }
    if (nvec == 1) {
        n = send(cr_io_fd(io), vec[0].iov_base, vec[0].iov_len, MSG_NOSIGNAL | more);
    } else if (more) {
        struct msghdr msg = { .msg_iov = (struct iovec *)vec, .msg_iovlen = (size_t)nvec };

        n = sendmsg(cr_io_fd(io), &msg, MSG_NOSIGNAL | more);
    } else {
        n = writev(cr_io_fd(io), (struct iovec *)vec, nvec);
    }
    if (n > 0) {
        evbuffer_drain(io->out, (size_t)n);
    }
    return n;
}

/* Write what is queued; free the output buffer once empty. */
static unsigned
do_write(struct cr_io *io)
{
    size_t before = cr_io_out_len(io), after;
    ssize_t n;

    if (io->flags & CR_IO_F_DEAD) {
        return 0;
    }
    if (before != 0) {
        n = write_out(io);
        if (n == -1 && errno != EAGAIN && errno != EINTR) {
            io->err = (int16_t)errno;
            io->flags |= CR_IO_F_DEAD;
            write_unwait(io);
            return CR_IO_R_ERROR;
        }
    }
    after = cr_io_out_len(io);
    if (after != 0) {
        if (write_wait(io) == -1) {
            io->err = ENOMEM;
            return CR_IO_R_ERROR;
        }
    } else {
        write_unwait(io);
        buf_put(io->loop, io->out);
        io->out = NULL;
        if ((io->flags & (CR_IO_F_SHUT | CR_IO_F_SHUT_DONE)) == CR_IO_F_SHUT) {
            io->flags |= CR_IO_F_SHUT_DONE;
            shutdown(cr_io_fd(io), SHUT_WR);
        }
    }
    return after <= CR_IO_LOW_WATER ? CR_IO_R_DRAINED : 0;
}

unsigned
cr_io_handle(struct cr_io *io, short what)
{
    unsigned r = 0;

    if (what & EV_TIMEOUT) {
        /* rev's timeout is the read timeout; wev's the write timeout */
        if (what & EV_WRITE) {
            return CR_IO_R_WTIMEOUT;
        }
        return CR_IO_R_RTIMEOUT;
    }
    if (what & EV_WRITE) {
        if (io->flags & CR_IO_F_CONNECTING) {
            int err = 0;
            socklen_t len = sizeof(err);

            if (!(io->flags & CR_IO_F_WWAIT)) {
                return 0;   /* a flush request while connecting */
            }
            if (getsockopt(cr_io_fd(io), SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
                err = errno;
            }
            io->flags &= ~CR_IO_F_CONNECTING;
            if (err != 0) {
                io->err = (int16_t)err;
                write_unwait(io);
                return CR_IO_R_ERROR;
            }
            r |= CR_IO_R_CONNECTED;
        }
        r |= do_write(io);
    }
    if ((what & EV_READ) && (io->flags & CR_IO_F_READ)) {
        /* activity: the read timeout starts over (rev's own one by itself) */
        if (io->rt != NULL && io->rt->t.list != NULL) {
            cr_timer_start(&io->rt->t, io->rt->t.list);
        }
        r |= do_read(io);
    }
    return r;
}
