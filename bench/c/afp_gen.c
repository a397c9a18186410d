/* afp_gen: traffic generator and sink of bench/af_packet.py, one thread on one core.
 * Sends 64-byte Ethernet/IPv4/UDP frames (60 bytes + FCS) as fast as a TPACKET_V2 ring
 * takes them on TXIF, with FLOWS different UDP source ports, and counts what arrives on
 * RXIF through a TPACKET_V3 ring.
 *
 *   afp_gen TXIF RXIF SECONDS [FLOWS] [SIZE] [EXPECT]
 *
 * The sink checks every frame: one of ours (IPv4/UDP to port 1024) counts as received
 * only if it is the sent frame byte for byte -- with its Ethernet addresses swapped
 * (EXPECT "swapped", the default: what l2fwd does) or unchanged (EXPECT "same": a
 * forwarder that does no header work) -- and a UDP source port of one of the flows; one
 * of ours that is not counts as "bad"; anything else (the kernel's own IPv6 ND and such)
 * as "other".  Every second prints "t SEC sent N received N rx_dropped N bad N" (counts
 * within that second); at the end "total sent N received N rx_dropped N seconds S bad N
 * other N". */
#include "afp_ring.h"

static void frame(uint8_t *p, unsigned size) {
    static const uint8_t hdr[42] = {
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02,  0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  0x08, 0x00,
        0x45, 0x00, 0, 0,  0x00, 0x00, 0x00, 0x00,  64, 17, 0, 0,  198, 18, 0, 1,  198, 19, 0, 1,
        0x04, 0x00, 0x04, 0x00, 0, 0, 0, 0,
    };
    memset(p, 0, size);
    memcpy(p, hdr, sizeof hdr);
    unsigned ip_len = size - 14, udp_len = size - 34;
    p[16] = ip_len >> 8; p[17] = ip_len & 0xff;
    p[38] = udp_len >> 8; p[39] = udp_len & 0xff;
    uint32_t sum = 0;
    for (int i = 14; i < 34; i += 2)
        sum += (p[i] << 8) | p[i + 1];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    sum = ~sum & 0xffff;
    p[24] = sum >> 8; p[25] = sum & 0xff;
}

/* What the sink expects back: the sent template (source port aside), MACs swapped or not. */
static uint8_t want[1514];
static unsigned want_len, want_flows;
static unsigned long long bad, other;

static int ours(const uint8_t *p, unsigned len) {
    return len >= 42 && p[12] == 0x08 && p[13] == 0x00 && p[23] == 17 && p[36] == 0x04
           && p[37] == 0x00;
}

static void judge(const uint8_t *p, unsigned len, unsigned long long *good) {
    if (!ours(p, len)) {
        other++;
        return;
    }
    unsigned sport = (p[34] << 8) | p[35];
    if (len == want_len && memcmp(p, want, 34) == 0 && memcmp(p + 36, want + 36, len - 36) == 0
            && sport >= 1024 && sport < 1024 + want_flows)
        (*good)++;
    else
        bad++;
}

static unsigned long long drain(struct rx_ring *rx) {
    unsigned long long got = 0;
    for (;;) {
        struct tpacket_block_desc *bd = rx_block(rx, rx->cur);
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
            return got;
        uint8_t *f = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
        for (unsigned i = 0; i < bd->hdr.bh1.num_pkts; i++) {
            struct tpacket3_hdr *h = (struct tpacket3_hdr *)f;
            judge(f + h->tp_mac, h->tp_snaplen, &got);
            f += h->tp_next_offset;
        }
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        rx->cur = (rx->cur + 1) % rx->block_nr;
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s TXIF RXIF SECONDS [FLOWS] [SIZE] [swapped|same]\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[3]);
    unsigned flows = argc > 4 ? (unsigned)atoi(argv[4]) : 256;
    unsigned size = argc > 5 ? (unsigned)atoi(argv[5]) : 60;
    const char *expect = argc > 6 ? argv[6] : "swapped";
    if (size < 60 || size > 1514 || flows < 1
            || (strcmp(expect, "swapped") != 0 && strcmp(expect, "same") != 0)) {
        fprintf(stderr, "SIZE must be 60..1514, FLOWS >= 1, EXPECT swapped or same\n");
        return 2;
    }
    struct rx_ring rx;
    struct tx_ring tx;
    rx_open(&rx, argv[2], 32768, 256);
    tx_open(&tx, argv[1], 32768, 2048, 4096);
    uint8_t tmpl[1514];
    frame(tmpl, size);
    memcpy(want, tmpl, size);
    if (strcmp(expect, "swapped") == 0) {
        memcpy(want, tmpl + 6, 6);
        memcpy(want + 6, tmpl, 6);
    }
    want_len = size;
    want_flows = flows;

    unsigned long long sent = 0, recv = 0, drops = 0, s_sent = 0, s_recv = 0, s_bad = 0;
    unsigned flow = 0;
    double start = now_s(), tick = start + 1, end = start + seconds;
    int sec = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        unsigned k = 0;
        for (; k < 64; k++) {
            struct tpacket2_hdr *t = tx_frame(&tx, tx.head);
            if (__atomic_load_n(&t->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE)
                break;
            uint8_t *p = (uint8_t *)t + 32;
            memcpy(p, tmpl, size);
            unsigned port = 1024 + flow;
            p[34] = port >> 8; p[35] = port & 0xff;
            flow = flow + 1 == flows ? 0 : flow + 1;
            t->tp_len = size;
            __atomic_store_n(&t->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
            tx.head = (tx.head + 1) % tx.frame_nr;
        }
        if (tx_kick(&tx) >= 0 || errno == EAGAIN || errno == ENOBUFS)
            sent += k;
        recv += drain(&rx);
        double t = now_s();
        if (t >= tick) {
            unsigned d = rx_drops(&rx);
            drops += d;
            printf("t %d sent %llu received %llu rx_dropped %u bad %llu\n", ++sec, sent - s_sent,
                   recv - s_recv, d, bad - s_bad);
            s_sent = sent;
            s_recv = recv;
            s_bad = bad;
            tick += 1;
        }
        if (t >= end)
            break;
    }
    /* what is still in flight arrives within a few ms */
    double settle = now_s() + 0.05;
    while (now_s() < settle)
        recv += drain(&rx);
    drops += rx_drops(&rx);
    printf("total sent %llu received %llu rx_dropped %llu seconds %.3f bad %llu other %llu\n",
           sent, recv, drops, now_s() - start, bad, other);
    return 0;
}
