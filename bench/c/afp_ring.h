/* Shared by afp_gen.c and afp_fwd.c: AF_PACKET rings as nfkit's af_packet driver sets
 * them up -- a TPACKET_V3 receive ring and a TPACKET_V2 transmit ring, one socket each. */
#ifndef AFP_RING_H
#define AFP_RING_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

struct rx_ring {
    int fd;
    uint8_t *map;
    unsigned block_size, block_nr, cur;
};

struct tx_ring {
    int fd;
    uint8_t *map;
    unsigned block_size, frame_size, frame_nr, fpb, head;
};

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void bind_to(int fd, const char *ifname, int proto) {
    struct sockaddr_ll sll = {0};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(proto);
    sll.sll_ifindex = if_nametoindex(ifname);
    if (!sll.sll_ifindex)
        die(ifname);
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0)
        die("bind");
}

static void rx_open(struct rx_ring *r, const char *ifname, unsigned block_size, unsigned block_nr) {
    int v = TPACKET_V3, one = 1;
    struct tpacket_req3 req = {0};
    r->fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (r->fd < 0)
        die("socket");
    if (setsockopt(r->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
        die("PACKET_VERSION");
    req.tp_block_size = block_size;
    req.tp_block_nr = block_nr;
    req.tp_frame_size = 2048;
    req.tp_frame_nr = block_size / 2048 * block_nr;
    req.tp_retire_blk_tov = 2;
    if (setsockopt(r->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0)
        die("PACKET_RX_RING");
    r->map = mmap(NULL, (size_t)block_size * block_nr, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_POPULATE, r->fd, 0);
    if (r->map == MAP_FAILED)
        die("mmap rx");
    setsockopt(r->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    bind_to(r->fd, ifname, ETH_P_ALL);
    r->block_size = block_size;
    r->block_nr = block_nr;
    r->cur = 0;
}

static void tx_open(struct tx_ring *t, const char *ifname, unsigned block_size,
                    unsigned frame_size, unsigned frame_nr) {
    int v = TPACKET_V2, one = 1;
    struct tpacket_req req = {0};
    t->fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (t->fd < 0)
        die("socket");
    if (setsockopt(t->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
        die("PACKET_VERSION");
    setsockopt(t->fd, SOL_PACKET, PACKET_LOSS, &one, sizeof one);
    setsockopt(t->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    t->fpb = block_size / frame_size;
    req.tp_block_size = block_size;
    req.tp_frame_size = frame_size;
    req.tp_block_nr = (frame_nr + t->fpb - 1) / t->fpb;
    req.tp_frame_nr = req.tp_block_nr * t->fpb;
    if (setsockopt(t->fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0)
        die("PACKET_TX_RING");
    t->map = mmap(NULL, (size_t)block_size * req.tp_block_nr, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_POPULATE, t->fd, 0);
    if (t->map == MAP_FAILED)
        die("mmap tx");
    bind_to(t->fd, ifname, 0);
    t->block_size = block_size;
    t->frame_size = frame_size;
    t->frame_nr = req.tp_frame_nr;
    t->head = 0;
}

static inline struct tpacket_block_desc *rx_block(struct rx_ring *r, unsigned i) {
    return (struct tpacket_block_desc *)(r->map + (size_t)i * r->block_size);
}

static inline struct tpacket2_hdr *tx_frame(struct tx_ring *t, unsigned i) {
    return (struct tpacket2_hdr *)(t->map + (size_t)(i / t->fpb) * t->block_size
                                   + (size_t)(i % t->fpb) * t->frame_size);
}

/* Hand the frames marked SEND_REQUEST to the kernel; returns -1 with errno on failure. */
static inline int tx_kick(struct tx_ring *t) {
    return (int)send(t->fd, NULL, 0, MSG_DONTWAIT);
}

static unsigned rx_drops(struct rx_ring *r) {
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof st;
    if (getsockopt(r->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0)
        return 0;
    return st.tp_drops;
}

#endif
