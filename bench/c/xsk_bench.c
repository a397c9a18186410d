/* xsk_bench: the C reference of bench/af_xdp.py -- the same AF_XDP path nfkit's af_xdp driver
 * takes (libxdp sockets, copy mode on veth, need_wakeup, one kick per burst), without Python.
 *
 *   xsk_bench rxdrop IF SECONDS [BATCH]          receive and give every frame back
 *   xsk_bench txonly IF SECONDS [BATCH]          send 64-byte UDP frames as fast as it can
 *   xsk_bench l2fwd RXIF TXIF SECONDS [BATCH]    receive on RXIF, swap MACs, send on TXIF
 *
 * As nfkit does, each socket has its own UMEM registered over one shared buffer area, so a
 * frame received on one socket is sent from the other by address, no copy.  Prints
 * "ready" when its sockets are open, "total rx N tx N seconds S cpu C" at the end (C: the
 * process's CPU time over the run, kernel work done in its system calls included). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#define NFRAMES 8192
#define FSIZE 2048
#define RING 2048

struct sock {
    struct xsk_umem *umem;
    struct xsk_socket *xsk;
    struct xsk_ring_prod fq, tx;
    struct xsk_ring_cons cq, rx;
    int fd;
};

static uint8_t *area;
static uint64_t freel[NFRAMES];
static unsigned nfree;
static volatile sig_atomic_t stop;

static void on_sig(int s) { (void)s; stop = 1; }

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void open_sock(struct sock *s, const char *ifname) {
    struct xsk_umem_config uc = {RING * 2, RING, FSIZE, 0, 0};
    struct xsk_socket_config sc;
    memset(&sc, 0, sizeof(sc));
    sc.rx_size = RING;
    sc.tx_size = RING;
    sc.bind_flags = XDP_USE_NEED_WAKEUP;
    int err = xsk_umem__create(&s->umem, area, (uint64_t)NFRAMES * FSIZE, &s->fq, &s->cq, &uc);
    if (!err)
        err = xsk_socket__create(&s->xsk, ifname, 0, s->umem, &s->rx, &s->tx, &sc);
    if (err) {
        fprintf(stderr, "xsk on %s: %s\n", ifname, strerror(-err));
        exit(1);
    }
    s->fd = xsk_socket__fd(s->xsk);
}

static void refill(struct sock *s) {
    uint32_t idx, n = xsk_prod_nb_free(&s->fq, nfree);
    if (n > nfree)
        n = nfree;
    if (n < 32 || xsk_ring_prod__reserve(&s->fq, n, &idx) != n)
        return;
    for (uint32_t i = 0; i < n; i++)
        *xsk_ring_prod__fill_addr(&s->fq, idx + i) = freel[--nfree];
    xsk_ring_prod__submit(&s->fq, n);
}

static void reap(struct sock *s) {
    uint32_t idx, n = xsk_ring_cons__peek(&s->cq, RING, &idx);
    for (uint32_t i = 0; i < n; i++)
        freel[nfree++] = *xsk_ring_cons__comp_addr(&s->cq, idx + i) & ~(uint64_t)(FSIZE - 1);
    if (n)
        xsk_ring_cons__release(&s->cq, n);
}

static void kick_tx(struct sock *s, uint32_t n) {
    /* copy mode sends at most 32 frames per kick (EAGAIN while more wait), as the driver */
    for (uint32_t t = 0; t < n / 16 + 4 && xsk_ring_prod__needs_wakeup(&s->tx); t++)
        if (sendto(s->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 || (errno != EAGAIN && errno != EBUSY))
            break;
}

static void udp_frame(uint8_t *p) {
    static const uint8_t h[42] = {
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00,
        0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 19, 0, 1,
        0x04, 0x00, 0x04, 0x00, 0, 26, 0, 0};
    memset(p, 0, 60);
    memcpy(p, h, sizeof(h));
    uint32_t sum = 0;
    for (int i = 14; i < 34; i += 2)
        sum += (p[i] << 8) | p[i + 1];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    p[24] = (~sum >> 8) & 0xff;
    p[25] = ~sum & 0xff;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s rxdrop|txonly IF SECONDS [BATCH] | l2fwd RXIF TXIF SECONDS [BATCH]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int fwd = !strcmp(mode, "l2fwd");
    double seconds = atof(argv[fwd ? 4 : 3]);
    uint32_t batch = argc > (fwd ? 5 : 4) ? (uint32_t)atoi(argv[fwd ? 5 : 4]) : 64;
    area = mmap(NULL, (size_t)NFRAMES * FSIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED)
        return 1;
    for (unsigned i = 0; i < NFRAMES; i++)
        freel[nfree++] = (uint64_t)i * FSIZE;
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    struct sock a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    open_sock(&a, argv[2]);
    struct sock *out = &a;
    if (fwd) {
        open_sock(&b, argv[3]);
        out = &b;
    }
    unsigned long long rx = 0, tx = 0;
    if (!strcmp(mode, "txonly"))
        for (unsigned i = 0; i < NFRAMES; i++)
            udp_frame(area + (size_t)i * FSIZE);
    else
        refill(&a);
    printf("ready\n");
    fflush(stdout);
    /* the first second is not measured, as in the nfkit DUT (the generator starts) */
    double t0 = now(), end = t0 + 1.0, c0 = cpu();
    int warm = 1;
    uint64_t polls = 0;
    while (!stop) {
        if (!(++polls & 1023) && now() >= end) {
            if (!warm)
                break;
            warm = 0;
            rx = tx = 0;
            t0 = now();
            c0 = cpu();
            end = t0 + seconds;
        }
        uint32_t idx, n;
        if (!strcmp(mode, "txonly")) {
            reap(&a);
            n = xsk_prod_nb_free(&a.tx, batch);
            if (n > batch) n = batch;
            if (n > nfree) n = nfree;
            if (!n || xsk_ring_prod__reserve(&a.tx, n, &idx) != n) {
                kick_tx(&a, 0);
                continue;
            }
            for (uint32_t i = 0; i < n; i++) {
                struct xdp_desc *d = xsk_ring_prod__tx_desc(&a.tx, idx + i);
                d->addr = freel[--nfree];
                d->len = 60;
            }
            xsk_ring_prod__submit(&a.tx, n);
            kick_tx(&a, n);
            tx += n;
            continue;
        }
        if (fwd)
            reap(out);
        refill(&a);
        n = xsk_ring_cons__peek(&a.rx, batch, &idx);
        if (!n) {
            if (xsk_ring_prod__needs_wakeup(&a.fq))
                recvfrom(a.fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
            continue;
        }
        rx += n;
        if (!fwd) {
            for (uint32_t i = 0; i < n; i++)
                freel[nfree++] = xsk_umem__extract_addr(xsk_ring_cons__rx_desc(&a.rx, idx + i)->addr)
                                 & ~(uint64_t)(FSIZE - 1);
            xsk_ring_cons__release(&a.rx, n);
            continue;
        }
        uint32_t tidx, room = xsk_prod_nb_free(&b.tx, n);
        if (room > n) room = n;
        if (room && xsk_ring_prod__reserve(&b.tx, room, &tidx) != room)
            room = 0;
        for (uint32_t i = 0; i < n; i++) {
            const struct xdp_desc *r = xsk_ring_cons__rx_desc(&a.rx, idx + i);
            uint64_t addr = xsk_umem__add_offset_to_addr(r->addr);
            if (i >= room) {                 /* TX ring full: drop */
                freel[nfree++] = addr & ~(uint64_t)(FSIZE - 1);
                continue;
            }
            uint8_t *p = area + addr, t[6];
            memcpy(t, p, 6);
            memcpy(p, p + 6, 6);
            memcpy(p + 6, t, 6);
            struct xdp_desc *d = xsk_ring_prod__tx_desc(&b.tx, tidx + i);
            d->addr = addr;
            d->len = r->len;
        }
        xsk_ring_cons__release(&a.rx, n);
        if (room) {
            xsk_ring_prod__submit(&b.tx, room);
            kick_tx(&b, room);
            tx += room;
        }
    }
    printf("total rx %llu tx %llu seconds %.3f cpu %.3f\n", rx, tx, now() - t0, cpu() - c0);
    xsk_socket__delete(a.xsk);
    xsk_umem__delete(a.umem);
    if (fwd) {
        xsk_socket__delete(b.xsk);
        xsk_umem__delete(b.umem);
    }
    return 0;
}
