/*
 * epoll_echo.c: a plain C epoll echo server, the native ceiling among the
 * benchmark peers (bench/peers/start epoll PORT WORKERS).
 *
 * Usage: epoll_echo -p PORT [-a ADDR] [-t THREADS]
 *
 * Each of the THREADS threads owns a non-blocking listening socket bound to
 * the same ADDR:PORT with SO_REUSEPORT (the kernel shards connections across
 * them) and its own level-triggered epoll instance. A readable connection is
 * read once (up to 64 KiB, into the thread's buffer) and written straight
 * back; if the socket will not take it all, the rest is kept for that
 * connection, reading stops and the connection waits for EPOLLOUT until the
 * rest is gone (so a client that does not read cannot make us buffer more
 * than one read). EOF or an error closes the connection. Port 0 picks a free
 * port for the first thread; the others bind to that same port. Prints
 * "listening on ADDR:PORT" on stdout once every thread's listener is bound.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define MAX_EVENTS 256
#define BACKLOG 1024
#define MAX_THREADS 256

/* One accepted connection; `pend` holds bytes the socket did not take yet. */
struct conn {
    int fd;
    char *pend;
    size_t len;
    size_t off;
};

struct worker {
    int listen_fd;
    int index;
};

/* The listener's epoll tag: connections are tagged with their struct. */
static char listener_tag;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int bind_listener(const struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) die("SO_REUSEADDR");
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) die("SO_REUSEPORT");
    if (bind(fd, (const struct sockaddr *)addr, sizeof *addr) < 0) die("bind");
    if (listen(fd, BACKLOG) < 0) die("listen");
    return fd;
}

static void close_conn(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pend);
    free(c);
}

static int set_interest(int ep, struct conn *c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes buf[0..len) to c; keeps what the socket refused. 0 ok, -1 close. */
static int send_or_keep(int ep, struct conn *c, const char *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(c->fd, buf + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            size_t rest = len - done;
            char *p = malloc(rest);
            if (!p) return -1;
            memcpy(p, buf + done, rest);
            c->pend = p;
            c->len = rest;
            c->off = 0;
            return set_interest(ep, c, EPOLLOUT);
        } else {
            return -1;
        }
    }
    return 0;
}

/* Sends what is pending; back to reading once it is all gone. */
static int flush_pending(int ep, struct conn *c) {
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->pend + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n > 0) {
            c->off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    free(c->pend);
    c->pend = NULL;
    c->len = c->off = 0;
    return set_interest(ep, c, EPOLLIN | EPOLLRDHUP);
}

static void accept_all(int ep, int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR || errno == ECONNABORTED) continue;
            /* E.g. EMFILE: report, back off briefly, keep serving. */
            perror("epoll_echo: accept");
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

static void *serve(void *arg) {
    const struct worker *w = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, w->listen_fd, &lev) < 0) die("epoll_ctl listener");
    char *buf = malloc(BUF_SIZE);
    if (!buf) die("malloc");
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listener_tag) {
                accept_all(ep, w->listen_fd);
                continue;
            }
            struct conn *c = evs[i].data.ptr;
            unsigned e = evs[i].events;
            if (c->pend) {
                if ((e & (EPOLLERR | EPOLLHUP)) || flush_pending(ep, c) < 0) close_conn(ep, c);
                continue;
            }
            ssize_t r = recv(c->fd, buf, BUF_SIZE, 0);
            if (r > 0) {
                if (send_or_keep(ep, c, buf, (size_t)r) < 0) close_conn(ep, c);
            } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                close_conn(ep, c); /* EOF or error */
            }
        }
    }
    return NULL;
}

static void usage(void) {
    fprintf(stderr, "usage: epoll_echo -p PORT [-a ADDR] [-t THREADS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = -1, threads = 1;
    int opt;
    while ((opt = getopt(argc, argv, "a:p:t:h")) != -1) {
        switch (opt) {
        case 'a': host = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 't': threads = strtol(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (port < 0 || port > 65535 || threads < 1 || threads > MAX_THREADS || optind != argc) usage();
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "epoll_echo: not an IPv4 address: %s\n", host);
        return 2;
    }
    static struct worker workers[MAX_THREADS];
    for (long t = 0; t < threads; t++) {
        workers[t].listen_fd = bind_listener(&addr);
        workers[t].index = (int)t;
        if (t == 0) {
            /* Port 0: every other shard binds to the port the first got. */
            socklen_t len = sizeof addr;
            if (getsockname(workers[0].listen_fd, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
        }
    }
    printf("listening on %s:%u\n", host, ntohs(addr.sin_port));
    fflush(stdout);
    fprintf(stderr, "epoll_echo: %ld thread(s), SO_REUSEPORT sharding, level-triggered epoll, 64 KiB reads\n",
            threads);
    for (long t = 1; t < threads; t++) {
        pthread_t tid;
        if (pthread_create(&tid, NULL, serve, &workers[t]) != 0) die("pthread_create");
        pthread_detach(tid);
    }
    serve(&workers[0]);
    return 0;
}
