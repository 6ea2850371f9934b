/*
 * echo_epoll: the near-limit reference.  One thread, one epoll, level
 * triggered, non-blocking sockets; TCP echo and UDP echo, like netlog's echo
 * and responder.  A connection holds at most one 64 KiB buffer: when the
 * peer does not read, we stop reading from it (the same back-pressure rule
 * as netlog's echo server).
 *
 *   echo_epoll HOST TCP_PORT UDP_PORT READY_FILE
 *
 * Port 0 binds an ephemeral port; READY_FILE gets
 * {"pid": ..., "echo": ..., "responder": ...} once both are bound.
 * SIGTERM/SIGINT stop it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536
#define MAX_EVENTS 256

struct conn {
    int fd;
    int len;  /* bytes in buf not yet written back */
    int off;  /* of which this many are written */
    int out;  /* waiting for EPOLLOUT (and not reading) */
    char buf[BUF];
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void die(const char *what) {
    fprintf(stderr, "echo_epoll: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int bound_port(int fd) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) die("getsockname");
    return ntohs(sa.sin_port);
}

static int listen_on(const char *host, int port, int type) {
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) die("inet_pton");
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    if (type == SOCK_STREAM && listen(fd, 4096) < 0) die("listen");
    if (type == SOCK_DGRAM) {
        int buf = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    }
    return fd;
}

static void set_events(int ep, struct conn *c, int out) {
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->out = out;
}

static void drop(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Write the pending bytes; 1 if all are written, 0 if the socket is full, -1 on error. */
static int flush_out(struct conn *c) {
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, (size_t)(c->len - c->off), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            if (errno == EINTR) continue;
            return -1;
        }
        c->off += (int)n;
    }
    c->off = c->len = 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: echo_epoll HOST TCP_PORT UDP_PORT READY_FILE\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = listen_on(argv[1], atoi(argv[2]), SOCK_STREAM);
    int ufd = listen_on(argv[1], atoi(argv[3]), SOCK_DGRAM);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    /* The listeners are told apart from connections by these two markers. */
    static int lmark, umark;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lmark};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = &umark;
    epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[4]);
    FILE *f = fopen(tmp, "w");
    if (!f) die("ready file");
    fprintf(f, "{\"pid\": %d, \"echo\": %d, \"responder\": %d}\n", getpid(), bound_port(lfd),
            bound_port(ufd));
    fclose(f);
    if (rename(tmp, argv[4]) < 0) die("rename");

    static char dgram[65536];
    struct epoll_event events[MAX_EVENTS];
    while (!stop) {
        int n = epoll_wait(ep, events, MAX_EVENTS, 200);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            void *p = events[k].data.ptr;
            if (p == &lmark) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = malloc(sizeof *c);
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    c->len = c->off = c->out = 0;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (p == &umark) {
                for (int i = 0; i < 64; i++) {
                    struct sockaddr_in from;
                    socklen_t flen = sizeof from;
                    ssize_t r = recvfrom(ufd, dgram, sizeof dgram, 0, (struct sockaddr *)&from, &flen);
                    if (r < 0) break;
                    sendto(ufd, dgram, (size_t)r, 0, (struct sockaddr *)&from, flen);
                }
                continue;
            }
            struct conn *c = p;
            if (c->out) {
                int w = flush_out(c);
                if (w < 0) {
                    drop(ep, c);
                } else if (w > 0) {
                    set_events(ep, c, 0);
                }
                continue;
            }
            ssize_t r = recv(c->fd, c->buf, BUF, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
                drop(ep, c);
                continue;
            }
            if (r == 0) {
                drop(ep, c);
                continue;
            }
            c->len = (int)r;
            c->off = 0;
            int w = flush_out(c);
            if (w < 0) drop(ep, c);
            else if (w == 0) set_events(ep, c, 1);
        }
    }
    return 0;
}
