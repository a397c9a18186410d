/* afp_fwd: the C baseline of bench/af_packet.py -- l2fwd (swap the Ethernet addresses)
 * from interface IN to interface OUT over the same rings nfkit's af_packet driver uses:
 * a TPACKET_V3 receive ring on IN, a TPACKET_V2 transmit ring on OUT, one copy per packet
 * (ring to ring), one send() per BURST packets.
 *
 *   afp_fwd IN OUT SECONDS [BURST] [RX_BLOCKS] [TX_FRAMES]
 *
 * Prints "forwarded N tx_dropped N rx_dropped N seconds S" when done (or on SIGINT/TERM). */
#include "afp_ring.h"
#include <signal.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s IN OUT SECONDS [BURST] [RX_BLOCKS] [TX_FRAMES]\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[3]);
    unsigned burst = argc > 4 ? (unsigned)atoi(argv[4]) : 32;
    unsigned rx_blocks = argc > 5 ? (unsigned)atoi(argv[5]) : 256;
    unsigned tx_frames = argc > 6 ? (unsigned)atoi(argv[6]) : 4096;
    struct rx_ring rx;
    struct tx_ring tx;
    rx_open(&rx, argv[1], 32768, rx_blocks);
    tx_open(&tx, argv[2], 32768, 2048, tx_frames);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    unsigned long long fwd = 0, txdrop = 0, rxdrop = 0;
    unsigned pending = 0;
    double start = now_s(), end = start + seconds;
    unsigned polls = 0;
    while (!stop) {
        if ((++polls & 1023) == 0 && now_s() >= end)
            break;
        struct tpacket_block_desc *bd = rx_block(&rx, rx.cur);
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
            if (pending) {
                tx_kick(&tx);
                pending = 0;
            }
            continue;
        }
        unsigned n = bd->hdr.bh1.num_pkts;
        uint8_t *f = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
        for (unsigned i = 0; i < n; i++) {
            struct tpacket3_hdr *h = (struct tpacket3_hdr *)f;
            unsigned len = h->tp_snaplen;
            uint8_t *pkt = f + h->tp_mac;
            struct tpacket2_hdr *t = tx_frame(&tx, tx.head);
            if (__atomic_load_n(&t->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) {
                tx_kick(&tx);                 /* full: kick and retry briefly */
                pending = 0;
                double give_up = now_s() + 0.0005;
                while (__atomic_load_n(&t->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE
                       && now_s() < give_up)
                    ;
            }
            if (t->tp_status != TP_STATUS_AVAILABLE || len > tx.frame_size - 32) {
                txdrop++;
            } else {
                uint8_t *out = (uint8_t *)t + 32;
                memcpy(out, pkt + 6, 6);      /* swap the addresses on the way */
                memcpy(out + 6, pkt, 6);
                memcpy(out + 12, pkt + 12, len - 12);
                t->tp_len = len;
                __atomic_store_n(&t->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
                tx.head = (tx.head + 1) % tx.frame_nr;
                fwd++;
                if (++pending >= burst) {
                    tx_kick(&tx);
                    pending = 0;
                }
            }
            f += h->tp_next_offset;
        }
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        rx.cur = (rx.cur + 1) % rx.block_nr;
    }
    if (pending)
        tx_kick(&tx);
    rxdrop += rx_drops(&rx);
    printf("forwarded %llu tx_dropped %llu rx_dropped %llu seconds %.3f\n", fwd, txdrop, rxdrop,
           now_s() - start);
    return 0;
}
