/*
 * load: the benchmark's C load client, so that the client is never the
 * bottleneck.  Single-threaded, epoll, 127.0.0.1 only (the harness passes the
 * host; nothing stops you from pointing it elsewhere, so don't).
 *
 * Every mode is bounded in time (and stream mode in bytes) and prints one
 * JSON line on stdout with its counts and its own CPU time (getrusage), so
 * the harness can show how busy the client core was.
 *
 *   load tcp    HOST PORT CONNS SIZE SECONDS WARMUP
 *       CONNS connections; each sends SIZE bytes, waits for the SIZE-byte
 *       echo, repeats.  Counts round trips completed in SECONDS after a
 *       WARMUP (seconds, not counted).
 *   load stream HOST PORT TOTAL CHUNK TIMEOUT
 *       One connection; writes TOTAL bytes in CHUNK-sized writes while
 *       reading the echo; the clock stops when all TOTAL bytes are back.
 *   load udp    HOST PORT SIZE WINDOW SECONDS WARMUP [SOCKETS]
 *       SOCKETS UDP sockets (1 unless given) each keep WINDOW datagrams of
 *       SIZE bytes in flight, sent and read in batches (sendmmsg,
 *       recvmmsg); a reply lets one more go.  After LOSS_MS of silence on
 *       a socket its in-flight ones count as lost and its window is refilled.
 *   load idle   HOST PORT CONNS HOLD
 *       Opens CONNS connections, sends one byte on each and reads its echo
 *       (so the server has really taken each one), prints the "ready" JSON
 *       line, then holds them until stdin closes or HOLD seconds pass.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOSS_MS 20
/* Echoed TCP bytes are counted, never looked at (the tests check their
 * content): MSG_TRUNC has the kernel drop them instead of copying them out,
 * a copy that was the client's, not the server's, work. */
#define DISCARD MSG_TRUNC
#define MAX_EVENTS 256

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "load: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void usage(void) {
    fprintf(stderr,
            "usage: load tcp    HOST PORT CONNS SIZE SECONDS WARMUP\n"
            "       load stream HOST PORT TOTAL CHUNK TIMEOUT\n"
            "       load udp    HOST PORT SIZE WINDOW SECONDS WARMUP [SOCKETS]\n"
            "       load idle   HOST PORT CONNS HOLD\n");
    exit(2);
}

static void cpu(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void report(const char *mode, long long ops, long long bytes, double seconds,
                   long long errors, long long lost, double cpu0_user, double cpu0_sys) {
    double user, sys;
    cpu(&user, &sys);
    printf("{\"mode\": \"%s\", \"ops\": %lld, \"bytes\": %lld, \"seconds\": %.6f, "
           "\"errors\": %lld, \"lost\": %lld, \"cpu_user\": %.6f, \"cpu_sys\": %.6f}\n",
           mode, ops, bytes, seconds, errors, lost, user - cpu0_user, sys - cpu0_sys);
    fflush(stdout);
}

static struct sockaddr_in address(const char *host, const char *port) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "load: not an IPv4 address: %s\n", host);
        exit(2);
    }
    return sa;
}

static void nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) die("fcntl");
}

static int tcp_connect(struct sockaddr_in *sa) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)sa, sizeof *sa) < 0) die("connect");
    return fd;
}

/* ---- tcp: request/response on CONNS connections ----------------------- */

struct conn {
    int fd;
    long to_send;  /* bytes of the current message still to write */
    long to_recv;  /* bytes of the current echo still to read */
    int want_out;  /* registered for EPOLLOUT */
};

static void conn_events(int ep, struct conn *c, int want_out) {
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->want_out = want_out;
}

/* Write what is left of the current message; 0 on success, -1 if the peer is gone. */
static int conn_send(int ep, struct conn *c, const char *msg, long size) {
    while (c->to_send > 0) {
        ssize_t n = send(c->fd, msg + (size - c->to_send), (size_t)c->to_send, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_events(ep, c, 1);
                return 0;
            }
            if (errno == EINTR) continue;
            return -1;
        }
        c->to_send -= n;
    }
    conn_events(ep, c, 0);
    return 0;
}

static int mode_tcp(int argc, char **argv) {
    if (argc != 8) usage();
    struct sockaddr_in sa = address(argv[2], argv[3]);
    int nconns = atoi(argv[4]);
    long size = atol(argv[5]);
    double seconds = atof(argv[6]), warmup = atof(argv[7]);
    if (nconns < 1 || size < 1 || seconds <= 0 || seconds > 600 || warmup < 0) usage();

    char *msg = malloc((size_t)size);
    char *scratch = malloc(1 << 20);
    if (!msg || !scratch) die("malloc");
    for (long i = 0; i < size; i++) msg[i] = (char)('a' + i % 26);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = tcp_connect(&sa);
        nonblocking(conns[i].fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) die("epoll_ctl");
    }

    double u0, s0;
    double start = now(), counted_from = start + warmup, deadline = counted_from + seconds;
    long long ops = 0, errors = 0;
    int alive = nconns, counting = 0;
    for (int i = 0; i < nconns; i++) {
        conns[i].to_send = size;
        conns[i].to_recv = size;
        if (conn_send(ep, &conns[i], msg, size) < 0) die("send");
    }
    if (warmup == 0) {
        cpu(&u0, &s0);
        counting = 1;
    }
    struct epoll_event events[MAX_EVENTS];
    while (alive > 0) {
        double t = now();
        if (!counting && t >= counted_from) {
            cpu(&u0, &s0);
            ops = 0;
            counting = 1;
        }
        if (t >= deadline) break;
        int n = epoll_wait(ep, events, MAX_EVENTS, 10);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = events[k].data.ptr;
            if (c->fd < 0) continue;
            if (events[k].events & EPOLLOUT) {
                if (conn_send(ep, c, msg, size) < 0) goto broken;
            }
            if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = recv(c->fd, scratch, 1 << 20, DISCARD);
                    if (r < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                        if (errno == EINTR) continue;
                        goto broken;
                    }
                    if (r == 0) goto broken;
                    c->to_recv -= r;
                    if (c->to_recv < 0) goto broken; /* more came back than was sent */
                    if (c->to_recv == 0 && c->to_send == 0) {
                        ops++;
                        c->to_send = size;
                        c->to_recv = size;
                        if (conn_send(ep, c, msg, size) < 0) goto broken;
                    }
                    if (r < (1 << 20)) break;
                }
            }
            continue;
        broken:
            errors++;
            alive--;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
        }
    }
    double elapsed = now() - counted_from;
    if (!counting) {
        cpu(&u0, &s0);
        elapsed = 0;
        ops = 0;
    }
    report("tcp", ops, ops * size, elapsed, errors, 0, u0, s0);
    return errors ? 1 : 0;
}

/* ---- stream: one connection, TOTAL bytes through and back -------------- */

static int mode_stream(int argc, char **argv) {
    if (argc != 7) usage();
    struct sockaddr_in sa = address(argv[2], argv[3]);
    long long total = atoll(argv[4]);
    long chunk = atol(argv[5]);
    double timeout = atof(argv[6]);
    if (total < 1 || chunk < 1 || timeout <= 0 || timeout > 600) usage();

    char *msg = malloc((size_t)chunk);
    char *scratch = malloc(1 << 20);
    if (!msg || !scratch) die("malloc");
    for (long i = 0; i < chunk; i++) msg[i] = (char)('a' + i % 26);

    int fd = tcp_connect(&sa);
    nonblocking(fd);
    double u0, s0;
    cpu(&u0, &s0);
    double start = now(), deadline = start + timeout;
    long long sent = 0, received = 0;
    int errors = 0;
    struct pollfd p = {.fd = fd};
    while (received < total) {
        if (now() >= deadline) {
            errors++;
            break;
        }
        p.events = POLLIN | (sent < total ? POLLOUT : 0);
        int n = poll(&p, 1, 10);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (n == 0) continue;
        if ((p.revents & POLLOUT) && sent < total) {
            for (;;) {
                long long left = total - sent;
                size_t want = (size_t)(left < chunk ? left : chunk);
                ssize_t w = send(fd, msg, want, MSG_NOSIGNAL);
                if (w < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                    if (errno == EINTR) continue;
                    errors++;
                    goto done;
                }
                sent += w;
                if (sent >= total || (size_t)w < want) break;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            for (;;) {
                ssize_t r = recv(fd, scratch, 1 << 20, DISCARD);
                if (r < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                    if (errno == EINTR) continue;
                    errors++;
                    goto done;
                }
                if (r == 0) {
                    errors++;
                    goto done;
                }
                received += r;
                if (r < (1 << 20)) break;
            }
        }
    }
done:;
    double elapsed = now() - start;
    close(fd);
    report("stream", received >= total ? 1 : 0, received, elapsed, errors, 0, u0, s0);
    return errors ? 1 : 0;
}

/* ---- udp: WINDOW datagrams in flight per socket ------------------------- */

#define MAX_SOCKETS 64
/* Datagrams sent or read per sendmmsg/recvmmsg: the client's syscalls per
 * probe fall, so a light client leaves the cores to the server. */
#define BATCH 64

static int mode_udp(int argc, char **argv) {
    if (argc != 8 && argc != 9) usage();
    struct sockaddr_in sa = address(argv[2], argv[3]);
    long size = atol(argv[4]);
    int window = atoi(argv[5]);
    double seconds = atof(argv[6]), warmup = atof(argv[7]);
    int sockets = argc == 9 ? atoi(argv[8]) : 1;
    if (size < 8 || size > 65507 || window < 1 || seconds <= 0 || seconds > 600 || warmup < 0 ||
        sockets < 1 || sockets > MAX_SOCKETS)
        usage();

    /* "ping"-like, but not exactly "ping", so every server echoes the same
     * number of bytes back (netlog answers a bare "ping" with "pong"). */
    char *msg = malloc((size_t)size);
    char *scratch = malloc((size_t)65536 * BATCH);
    if (!msg || !scratch) die("malloc");
    memset(msg, '.', (size_t)size);
    memcpy(msg, "ping seq=", 9 < size ? 9 : (size_t)size);
    msg[size - 1] = '\n';

    struct mmsghdr out[BATCH], in[BATCH];
    struct iovec out_iov[BATCH], in_iov[BATCH];
    memset(out, 0, sizeof out);
    memset(in, 0, sizeof in);
    for (int k = 0; k < BATCH; k++) {
        out_iov[k] = (struct iovec){.iov_base = msg, .iov_len = (size_t)size};
        out[k].msg_hdr.msg_iov = &out_iov[k];
        out[k].msg_hdr.msg_iovlen = 1;
        in_iov[k] = (struct iovec){.iov_base = scratch + (size_t)k * 65536, .iov_len = 65536};
        in[k].msg_hdr.msg_iov = &in_iov[k];
        in[k].msg_hdr.msg_iovlen = 1;
    }

    /* Several sockets are several senders: SO_REUSEPORT spreads datagrams
     * by their addresses, so one socket's all go to one worker. */
    struct pollfd p[MAX_SOCKETS];
    int inflight[MAX_SOCKETS];
    double heard[MAX_SOCKETS];
    for (int i = 0; i < sockets; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) die("socket");
        int buf = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
        nonblocking(fd);
        p[i] = (struct pollfd){.fd = fd, .events = POLLIN};
        inflight[i] = 0;
        heard[i] = 0;
    }

    double u0 = 0, s0 = 0;
    double start = now(), counted_from = start + warmup, deadline = counted_from + seconds;
    long long replies = 0, lost = 0, errors = 0;
    int counting = 0;
    if (warmup == 0) {
        cpu(&u0, &s0);
        counting = 1;
    }
    for (;;) {
        double t = now();
        if (!counting && t >= counted_from) {
            cpu(&u0, &s0);
            replies = lost = 0;
            counting = 1;
        }
        if (t >= deadline) break;
        for (int i = 0; i < sockets; i++) {
            /* A socket silent for LOSS_MS: what it has in flight is lost. */
            if (inflight[i] > 0 && t - heard[i] > LOSS_MS / 1000.0) {
                lost += inflight[i];
                inflight[i] = 0;
            }
            while (inflight[i] < window) {
                int want = window - inflight[i] < BATCH ? window - inflight[i] : BATCH;
                int sent = sendmmsg(p[i].fd, out, (unsigned)want, 0);
                if (sent < 0) {
                    if (errno == EINTR) continue;
                    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;
                    /* ECONNREFUSED from an ICMP error: the server is not there. */
                    errors++;
                    break;
                }
                if (inflight[i] == 0) heard[i] = t;
                inflight[i] += sent;
                if (sent < want) break;
            }
        }
        if (errors > 1000) break;
        int n = poll(p, (nfds_t)sockets, LOSS_MS);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        t = now();
        for (int i = 0; n > 0 && i < sockets; i++) {
            if (!p[i].revents) continue;
            for (;;) {
                int got = recvmmsg(p[i].fd, in, BATCH, MSG_DONTWAIT, NULL);
                if (got < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
                    errors++;
                    break;
                }
                for (int k = 0; k < got; k++) {
                    if (in[k].msg_len == (unsigned)size) replies++;
                    else errors++;
                }
                inflight[i] = inflight[i] > got ? inflight[i] - got : 0;
                heard[i] = t;
                if (got < BATCH) break;
            }
        }
    }
    double elapsed = now() - counted_from;
    if (!counting) elapsed = 0;
    report("udp", replies, replies * size, elapsed, errors, lost, u0, s0);
    return 0;
}

/* ---- idle: CONNS open connections, held ----------------------------------- */

static int mode_idle(int argc, char **argv) {
    if (argc != 6) usage();
    struct sockaddr_in sa = address(argv[2], argv[3]);
    int nconns = atoi(argv[4]);
    double hold = atof(argv[5]);
    if (nconns < 1 || hold <= 0 || hold > 600) usage();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconns + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)nconns + 64 ? rl.rlim_max : (rlim_t)nconns + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    double u0, s0;
    cpu(&u0, &s0);
    double start = now();
    int *fds = calloc((size_t)nconns, sizeof *fds);
    long long errors = 0;
    for (int i = 0; i < nconns; i++) fds[i] = tcp_connect(&sa);
    /* One byte each, then its echo: the server has accepted and is serving
     * every one of them when "ready" is printed. */
    struct timeval tv = {.tv_sec = 10};
    for (int i = 0; i < nconns; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (send(fds[i], "x", 1, MSG_NOSIGNAL) != 1) errors++;
    }
    for (int i = 0; i < nconns; i++) {
        char c;
        if (recv(fds[i], &c, 1, 0) != 1) errors++;
    }
    report("idle", nconns - errors, 0, now() - start, errors, 0, u0, s0);
    struct pollfd p = {.fd = 0, .events = POLLIN};
    double deadline = start + hold;
    while (now() < deadline) {
        int n = poll(&p, 1, 100);
        if (n > 0) {
            char c[64];
            if (read(0, c, sizeof c) <= 0) break;
        }
    }
    for (int i = 0; i < nconns; i++) close(fds[i]);
    return errors ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (!strcmp(argv[1], "tcp")) return mode_tcp(argc, argv);
    if (!strcmp(argv[1], "stream")) return mode_stream(argc, argv);
    if (!strcmp(argv[1], "udp")) return mode_udp(argc, argv);
    if (!strcmp(argv[1], "idle")) return mode_idle(argc, argv);
    usage();
    return 2;
}
