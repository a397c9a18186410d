/* nfkit's shim over libxdp's AF_XDP sockets; see _xdp_shim.h for what each call does. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include "_xdp_shim.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

struct nx_queue {
    struct xsk_umem *umem;
    struct xsk_socket *xsk;
    struct xsk_ring_prod fq, tx;
    struct xsk_ring_cons cq, rx;
    uint64_t chunk;
    uint64_t kicks;
    int fd;
};

/* libbpf and libxdp print to stderr; keep their warnings, drop the info/debug chatter
 * ("No bpffs found", "skipping unrecognized data section") that is not a problem here. */
static int nx_print_bpf(enum libbpf_print_level level, const char *fmt, va_list args)
{
    static const char *harmless[] = {"unrecognized data section", "xdp_pass",
                                     "raising 'ulimit -l'", "failed to load object"};
    size_t i;
    if (level != LIBBPF_WARN)
        return 0;
    for (i = 0; i < sizeof(harmless) / sizeof(harmless[0]); i++)
        if (strstr(fmt, harmless[i]))
            return 0;
    return vfprintf(stderr, fmt, args);
}

/* ... and libxdp's probe for its dispatcher, which fails (and says so) when it finds a plain
 * XSK program on the interface: it then uses that program, so nothing is wrong. */
static int nx_print_xdp(enum libxdp_print_level level, const char *fmt, va_list args)
{
    return level == LIBXDP_WARN ? vfprintf(stderr, fmt, args) : 0;
}

int nx_attached_prog(int ifindex, uint32_t *prog_id, char *name, int name_len)
{
    LIBBPF_OPTS(bpf_xdp_query_opts, opts);
    struct bpf_prog_info info;
    uint32_t len = sizeof(info);
    int err, fd;

    *prog_id = 0;
    if (name_len > 0)
        name[0] = 0;
    err = bpf_xdp_query(ifindex, 0, &opts);
    if (err)
        return err;
    *prog_id = opts.prog_id;
    if (!opts.prog_id)
        return 0;
    fd = bpf_prog_get_fd_by_id(opts.prog_id);
    if (fd < 0)
        return -errno;
    memset(&info, 0, sizeof(info));
    err = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (err)
        return -errno;
    if (name_len > 0) {
        strncpy(name, info.name, name_len - 1);
        name[name_len - 1] = 0;
    }
    return 0;
}

int nx_bound_queues(int ifindex, uint32_t prog_id, uint32_t nq, uint8_t *bound)
{
    unsigned char frame[64];
    struct xdp_md md;
    uint32_t q;
    int fd, n = 0, err = 0;

    fd = bpf_prog_get_fd_by_id(prog_id);
    if (fd < 0)
        return -errno;
    memset(frame, 0, sizeof(frame));
    for (q = 0; q < nq; q++) {
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = sizeof(frame),
                    .ctx_in = &md, .ctx_size_in = sizeof(md));
        memset(&md, 0, sizeof(md));
        md.data_end = sizeof(frame);
        md.ingress_ifindex = ifindex;
        md.rx_queue_index = q;
        if (bpf_prog_test_run_opts(fd, &o)) {
            err = -errno;
            break;
        }
        bound[q] = o.retval == XDP_REDIRECT;
        n += bound[q];
    }
    close(fd);
    return err ? err : n;
}

int nx_detach(int ifindex, uint32_t prog_id)
{
    LIBBPF_OPTS(bpf_xdp_query_opts, qo);
    LIBBPF_OPTS(bpf_xdp_attach_opts, ao);
    uint32_t mode;
    int fd, err;

    if (bpf_xdp_query(ifindex, 0, &qo))
        return -errno;
    if (qo.prog_id != prog_id)
        return -ENOENT;
    mode = qo.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE
         : qo.attach_mode == XDP_ATTACHED_HW ? XDP_FLAGS_HW_MODE : XDP_FLAGS_DRV_MODE;
    fd = bpf_prog_get_fd_by_id(prog_id);
    if (fd < 0)
        return -errno;
    ao.old_prog_fd = fd;
    err = bpf_xdp_attach(ifindex, -1, mode | XDP_FLAGS_REPLACE, &ao);
    close(fd);
    return err ? -errno : 0;
}

int nx_open(struct nx_queue **out, const char *ifname, uint32_t queue, void *area,
            uint64_t size, uint32_t chunk, int unaligned, uint32_t fill_size,
            uint32_t comp_size, uint32_t rx_size, uint32_t tx_size, uint32_t xdp_flags,
            uint32_t bind_flags, int busy_budget, struct nx_info *info, int *stage)
{
    struct xsk_umem_config ucfg = {
        .fill_size = fill_size, .comp_size = comp_size, .frame_size = chunk,
        .frame_headroom = 0, .flags = unaligned ? XDP_UMEM_UNALIGNED_CHUNK_FLAG : 0,
    };
    struct xsk_socket_config scfg;
    struct xdp_options xo;
    socklen_t xolen = sizeof(xo);
    LIBBPF_OPTS(bpf_xdp_query_opts, qo);
    struct nx_queue *q;
    int err, one = 1;

    *out = NULL;
    libbpf_set_print(nx_print_bpf);
    libxdp_set_print(nx_print_xdp);
    q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->chunk = chunk;
    *stage = 1;
    err = xsk_umem__create(&q->umem, area, size, &q->fq, &q->cq, &ucfg);
    if (err) {
        free(q);
        return err < 0 ? err : -err;
    }
    memset(&scfg, 0, sizeof(scfg));
    scfg.rx_size = rx_size;
    scfg.tx_size = tx_size;
    scfg.xdp_flags = xdp_flags;
    scfg.bind_flags = bind_flags;
    *stage = 2;
    err = xsk_socket__create(&q->xsk, ifname, queue, q->umem, &q->rx, &q->tx, &scfg);
    if (err) {
        xsk_umem__delete(q->umem);
        free(q);
        return err < 0 ? err : -err;
    }
    q->fd = xsk_socket__fd(q->xsk);
    *stage = 3;
    if (busy_budget > 0) {
        /* busy polling: the NAPI loop runs in this thread's syscalls (kernel >= 5.11) */
        int usecs = 20;
        if (setsockopt(q->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) ||
            setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL, &usecs, sizeof(usecs)) ||
            setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &busy_budget,
                       sizeof(busy_budget))) {
            err = -errno;
            nx_close(q);
            return err;
        }
    }
    memset(info, 0, sizeof(*info));
    info->fd = q->fd;
    if (getsockopt(q->fd, SOL_XDP, XDP_OPTIONS, &xo, &xolen) == 0)
        info->zero_copy = (xo.flags & XDP_OPTIONS_ZEROCOPY) != 0;
    if (bpf_xdp_query(if_nametoindex(ifname), 0, &qo) == 0) {
        info->attach_mode = qo.attach_mode;
        info->prog_id = qo.prog_id;
    }
    *out = q;
    return 0;
}

/* Where a descriptor's packet is: the offset bits (unaligned mode) added to the base. */
static inline uint64_t nx_addr(uint64_t addr)
{
    return xsk_umem__add_offset_to_addr(addr);
}

static uint32_t nx_reap(struct nx_queue *q, int32_t *done, uint32_t done_max, uint8_t *owned)
{
    uint32_t idx, i, n = xsk_ring_cons__peek(&q->cq, done_max, &idx);
    for (i = 0; i < n; i++) {
        int32_t s = (int32_t)(nx_addr(*xsk_ring_cons__comp_addr(&q->cq, idx + i)) / q->chunk);
        done[i] = s;
        owned[s] = 0;
    }
    if (n)
        xsk_ring_cons__release(&q->cq, n);
    return n;
}

int nx_rx(struct nx_queue *q, const int32_t *fill, uint32_t nfill, uint32_t *nfilled,
          int32_t *slots, uint32_t max_rx, uint32_t *data_off, uint32_t *data_len,
          int32_t *done, uint32_t done_max, uint32_t *ndone, uint8_t *owned)
{
    uint32_t idx, i, n, k;

    *ndone = done_max ? nx_reap(q, done, done_max, owned) : 0;
    k = 0;
    if (nfill) {
        k = xsk_prod_nb_free(&q->fq, nfill);
        if (k > nfill)
            k = nfill;
        if (k && xsk_ring_prod__reserve(&q->fq, k, &idx) == k) {
            for (i = 0; i < k; i++) {
                *xsk_ring_prod__fill_addr(&q->fq, idx + i) = (uint64_t)fill[i] * q->chunk;
                owned[fill[i]] = 1;
            }
            xsk_ring_prod__submit(&q->fq, k);
        } else {
            k = 0;
        }
    }
    *nfilled = k;
    n = xsk_ring_cons__peek(&q->rx, max_rx, &idx);
    for (i = 0; i < n; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
        uint64_t a = nx_addr(d->addr);
        int32_t s = (int32_t)(a / q->chunk);
        slots[i] = s;
        data_off[s] = (uint32_t)(a - (uint64_t)s * q->chunk);
        data_len[s] = d->len;
        owned[s] = 0;
    }
    if (n)
        xsk_ring_cons__release(&q->rx, n);
    else if (xsk_ring_prod__needs_wakeup(&q->fq)) {
        q->kicks++;
        recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
    }
    return (int)n;
}

int nx_tx(struct nx_queue *q, int32_t *slots, uint32_t n, const uint32_t *data_off,
          const uint32_t *data_len, uint32_t max_len, uint32_t *rejected, int32_t *done,
          uint32_t done_max, uint32_t *ndone, uint8_t *owned)
{
    uint32_t idx, i, room, acc = 0, rej = 0, tries;
    int32_t *rej_buf = NULL;

    *ndone = done_max ? nx_reap(q, done, done_max, owned) : 0;
    *rejected = 0;
    if (!n)
        return 0;
    room = xsk_prod_nb_free(&q->tx, n);
    if (room > n)
        room = n;
    if (!room || xsk_ring_prod__reserve(&q->tx, room, &idx) != room)
        return 0;
    /* Walk slots in order: good ones go on the ring (and to the front of slots[]),
     * rejected ones are set aside, the rest stay untried. */
    for (i = 0; i < n && acc < room; i++) {
        int32_t s = slots[i];
        uint32_t len = data_len[s];
        if (len < 14 || len > max_len) {
            if (!rej_buf) {
                rej_buf = malloc(sizeof(int32_t) * n);
                if (!rej_buf)
                    break;
            }
            rej_buf[rej++] = s;
            continue;
        }
        struct xdp_desc *d = xsk_ring_prod__tx_desc(&q->tx, idx + acc);
        d->addr = (uint64_t)s * q->chunk + data_off[s];
        d->len = len;
        d->options = 0;
        owned[s] = 1;
        slots[acc++] = s;
    }
    /* rejected ones reached before the ring ran out, after the accepted */
    if (rej) {
        /* [acc | (i - acc - rej) consumed... ]: slots[acc .. i) were overwritten only up
         * to acc, so what lies in slots[acc .. i) is stale: put the rejected there, and
         * untried ones (i .. n) stay where they are -- i == acc + rej. */
        memcpy(slots + acc, rej_buf, sizeof(int32_t) * rej);
        free(rej_buf);
    }
    *rejected = rej;
    if (acc < room) {
        /* reserved more than used: libxdp has no "unreserve", so give back by moving the
         * cached producer (the descriptors were never submitted) */
        q->tx.cached_prod -= room - acc;
    }
    if (!acc)
        return 0;
    xsk_ring_prod__submit(&q->tx, acc);
    /* Copy mode sends at most 32 frames per kick (the kernel's TX batch) and says EAGAIN
     * while more wait: kick until the ring is drained or the kernel is busy. */
    for (tries = 0; tries < acc / 16 + 4; tries++) {
        if (!xsk_ring_prod__needs_wakeup(&q->tx))
            break;
        q->kicks++;
        if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
            break;
        if (errno != EAGAIN && errno != EBUSY)
            break;
    }
    return (int)acc;
}

int nx_stats(struct nx_queue *q, uint64_t *out7)
{
    struct xdp_statistics st;
    socklen_t len = sizeof(st);
    memset(&st, 0, sizeof(st));
    if (getsockopt(q->fd, SOL_XDP, XDP_STATISTICS, &st, &len))
        return -errno;
    out7[0] = st.rx_dropped;
    out7[1] = st.rx_invalid_descs;
    out7[2] = st.tx_invalid_descs;
    out7[3] = st.rx_ring_full;
    out7[4] = st.rx_fill_ring_empty_descs;
    out7[5] = st.tx_ring_empty_descs;
    out7[6] = q->kicks;
    return 0;
}

void nx_close(struct nx_queue *q)
{
    if (!q)
        return;
    if (q->xsk)
        xsk_socket__delete(q->xsk);
    if (q->umem)
        xsk_umem__delete(q->umem);
    free(q);
}
