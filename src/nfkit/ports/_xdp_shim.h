/* nfkit's shim over libxdp's AF_XDP sockets: the few calls the AF_XDP driver
 * (nfkit/ports/af_xdp.py) makes.
 *
 * Python binds this header with cffi in API mode (nfkit/ports/_xdp_build.py); the same text
 * is the cffi cdef, so it uses only plain C types.  libxdp's ring operations
 * (xsk_ring_prod__reserve, xsk_ring_cons__peek...) are static inline functions, which an FFI
 * cannot call: each burst is one shim call that walks the rings over nfkit's pool arrays.
 *
 * Frames are pool slots: the UMEM is the pool's buffer memory, a frame's address is
 * slot * stride (+ where the packet starts in the row), so no byte is copied here.
 */
#ifndef NFKIT_XDP_SHIM_H
#define NFKIT_XDP_SHIM_H

#include <stdint.h>

struct nx_queue;

/* What nx_open learnt, for the log and the tests. */
struct nx_info {
    int32_t zero_copy;      /* 1: the kernel bound in zero-copy mode, 0: copy mode */
    int32_t attach_mode;    /* XDP_ATTACHED_DRV (1, native), _SKB (2), _HW (3) */
    uint32_t prog_id;       /* the XDP program on the interface after the bind */
    int32_t fd;             /* the XSK socket */
};

/* The program attached to ifindex before we open: its id (0: none) and name. */
int nx_attached_prog(int ifindex, uint32_t *prog_id, char *name, int name_len);

/* One XSK socket on (ifname, queue) with its own UMEM over [area, area + size).
 * chunk: the pool's stride; unaligned: the stride is not a power of two.
 * xdp_flags / bind_flags: as struct xsk_socket_config.  Returns 0 or -errno; *stage says
 * which step failed (1 umem, 2 socket). */
int nx_open(struct nx_queue **out, const char *ifname, uint32_t queue, void *area,
            uint64_t size, uint32_t chunk, int unaligned, uint32_t fill_size,
            uint32_t comp_size, uint32_t rx_size, uint32_t tx_size, uint32_t xdp_flags,
            uint32_t bind_flags, int busy_budget, struct nx_info *info, int *stage);

/* One receive burst: reap the completion ring into done[0:*ndone] (at most done_max),
 * hand fill[0:nfill] to the fill ring (*nfilled of them went in, from the front), then take
 * up to max_rx frames from the RX ring into slots[], setting data_off/data_len.  owned[slot]
 * is 1 while the kernel holds the frame.  Kicks the kernel when it asks (need_wakeup).
 * Returns the number received. */
int nx_rx(struct nx_queue *q, const int32_t *fill, uint32_t nfill, uint32_t *nfilled,
          int32_t *slots, uint32_t max_rx, uint32_t *data_off, uint32_t *data_len,
          int32_t *done, uint32_t done_max, uint32_t *ndone, uint8_t *owned);

/* One transmit burst: reap completions as nx_rx, then put slots[0:n] on the TX ring by
 * address; packets longer than max_len or shorter than 14 bytes are rejected.  slots[] is
 * reordered to [accepted | rejected | not tried (ring full)]; *rejected says how many were
 * rejected; one sendto() kick for the burst.  Returns the number accepted. */
int nx_tx(struct nx_queue *q, int32_t *slots, uint32_t n, const uint32_t *data_off,
          const uint32_t *data_len, uint32_t max_len, uint32_t *rejected, int32_t *done,
          uint32_t done_max, uint32_t *ndone, uint8_t *owned);

/* XDP_STATISTICS: rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full,
 * rx_fill_ring_empty_descs, tx_ring_empty_descs; plus the kicks this queue made.  0/-errno. */
int nx_stats(struct nx_queue *q, uint64_t *out7);

/* Which of queues 0..nq-1 of ifindex have a socket in the XSK map of program prog_id
 * (bound[q] = 1): the program is test-run (BPF_PROG_TEST_RUN) as if a frame arrived on each
 * queue, and redirects where a socket is.  Returns how many are bound, or -errno. */
int nx_bound_queues(int ifindex, uint32_t prog_id, uint32_t nq, uint8_t *bound);

/* Detach program prog_id from ifindex if it is still the one attached (an atomic replace of
 * exactly that program: one attached meanwhile is left alone).  0 or -errno. */
int nx_detach(int ifindex, uint32_t prog_id);

/* Delete the socket (libxdp detaches its program with the last socket) and the UMEM. */
void nx_close(struct nx_queue *q);

#endif
