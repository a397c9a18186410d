/* nfkit's shim over DPDK 22.11: the few calls the DPDK driver (nfkit/ports/dpdk.py) makes.
 *
 * Python binds this header with cffi in API mode (nfkit/ports/_dpdk_build.py); the same
 * text is the cffi cdef, so it uses only plain C types.  DPDK's fast-path calls
 * (rte_eth_rx_burst, rte_pktmbuf_alloc_bulk...) are static inline functions, which an FFI
 * cannot call directly: every burst goes through one shim call instead, which also moves
 * the packet bytes between rte_mbufs and nfkit's numpy buffer pool.
 */
#ifndef NFKIT_DPDK_SHIM_H
#define NFKIT_DPDK_SHIM_H

#include <stdint.h>

/* nfkit's Mempool seen from C: pointers into its numpy arrays (see nfkit/buffers.py). */
struct nfk_pool_view {
    uint8_t *data;          /* (capacity, stride) uint8 rows */
    uint32_t stride;        /* headroom + buf_size */
    uint32_t headroom;
    uint32_t capacity;
    uint32_t *data_off;
    uint32_t *data_len;
    uint8_t *refcnt;
    int32_t *free_stack;    /* free slots are free_stack[0:top]; allocation pops the top */
    uint64_t *timestamp;
    uint16_t *port;
    uint32_t *rss_hash;
};

/* Per-queue results that are not return values. */
struct nfk_rx_extra {
    uint64_t oversize;      /* received packets longer than an nfkit buffer (dropped) */
    uint64_t octets;        /* bytes of the packets delivered by the last nfk_rx */
};

struct nfk_tx_extra {
    int64_t top;            /* the pool's free-stack height after the call */
    uint64_t octets;        /* bytes of the packets sent by the last nfk_tx */
};

/* Received rte_mbufs kept by a queue for its next transmit instead of going back to the
 * mempool (and coming out again): one per queue, at most 512, freed by nfk_stash_free
 * when the queue closes.  This removes a free and an allocation per forwarded packet. */
struct nfk_stash {
    uint32_t n;
    void *m[512];
};

/* EAL. */
int nfk_eal_init(int argc, char **argv);       /* rte_eal_init; -1 and nfk_errno() on error */
int nfk_eal_cleanup(void);
int nfk_errno(void);
const char *nfk_strerror(int err);
void nfk_log_capture(int echo);                 /* keep a copy of DPDK's log lines */
int nfk_log_tail(char *buf, int len);           /* the last captured log text */
void nfk_log_clear(void);
int nfk_dev_probe(const char *devargs);         /* hotplug a virtual device after init */
int nfk_vdev_remove(const char *name);           /* remove a virtual device (after close) */

/* The DPDK packet pool. */
void *nfk_pool_create(const char *name, unsigned n, unsigned cache_size, unsigned data_room,
                      int socket);
unsigned nfk_pool_in_use(void *mp);
unsigned nfk_pool_avail(void *mp);
void nfk_pool_free(void *mp);

/* Ports. */
int nfk_port_by_name(const char *name, uint16_t *port_id);
int nfk_port_setup(uint16_t port, uint16_t nb_queues, uint16_t *rxd, uint16_t *txd, void *mp,
                   int promiscuous, int multicast, char *msg, int msglen);
int nfk_port_mac(uint16_t port, uint8_t *mac);
int nfk_port_stats(uint16_t port, uint64_t *out);   /* ipackets opackets ibytes obytes imissed
                                                       ierrors oerrors rx_nombuf */
int nfk_port_close(uint16_t port);
int nfk_port_driver(uint16_t port, char *buf, int len);

/* One burst: receive up to n packets into nfkit slots popped from the pool's free stack
 * (top is the stack height; the caller lowers it by the return value).  Slots land in
 * slots_out in receive order. */
int nfk_rx(uint16_t port, uint16_t queue, const struct nfk_pool_view *pv, int64_t top,
           int32_t *slots_out, int n, uint16_t port_index, struct nfk_rx_extra *extra,
           void *mp, struct nfk_stash *stash);

/* One burst: copy the n nfkit slots into fresh rte_mbufs of mp and transmit them;
 * returns how many were sent (from the front; unsent rte_mbufs are freed).  The nfkit
 * slots of the sent packets go back to the pool (pushed on its free stack from `top`;
 * extra->top is the new height), and so do the unsent ones when free_unsent is set (else
 * they stay allocated, for the caller).  Returns -2, having done nothing, when a slot is
 * out of range, not allocated or listed twice (the caller raises DoubleFree). */
int nfk_tx(uint16_t port, uint16_t queue, void *mp, const struct nfk_pool_view *pv,
           const int32_t *slots, int n, int64_t top, int free_unsent,
           struct nfk_tx_extra *extra, struct nfk_stash *stash);
void nfk_stash_free(struct nfk_stash *stash);

/* The limit: a pure-C l2fwd on the same PMD, for the benchmark.  Receives bursts of
 * `burst` from (port, queue), swaps the MAC addresses and transmits back on the same
 * queue until `packets` were received; copy=1 additionally moves every packet through the
 * nfkit pool exactly as nfk_rx/nfk_tx do (with a stash of its own); copy=2 does the same
 * minus moving the bytes (the cost of a zero-copy exchange of buffers).  Returns packets
 * forwarded; *ns the time. */
int64_t nfk_bench_l2fwd(uint16_t rx_port, uint16_t tx_port, void *mp, int burst,
                        int64_t packets, int copy, const struct nfk_pool_view *pv,
                        uint64_t *ns);

#endif
