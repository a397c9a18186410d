/* nfkit's shim over DPDK 22.11 (see _dpdk_shim.h for what each call does and why). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>

#include "_dpdk_shim.h"

#define NFK_MAX_BURST 512
/* rx/tx bursts are split into chunks of this many packets: a chunk's rte_mbufs come from
 * and go back to the per-lcore mempool cache (a request of cache_size or more bypasses
 * the cache for the shared ring, which halves the rate of a 256-packet burst). */
#define NFK_CHUNK 64

/* ---------------------------------------------------------------------------------------
 * DPDK's log, captured: errors from EAL and the PMDs ("Couldn't open file.pcap") are only
 * logged, so the driver puts the last lines into the exception it raises.  Lines still go
 * to stderr unless echo is off.
 * ------------------------------------------------------------------------------------- */
#define NFK_LOG_SIZE 8192
static char log_buf[NFK_LOG_SIZE];
static size_t log_len;
static int log_echo = 1;

static ssize_t log_write(void *cookie, const char *data, size_t size)
{
    (void)cookie;
    if (log_echo) {
        ssize_t done = 0;
        while ((size_t)done < size) {
            ssize_t w = write(2, data + done, size - done);
            if (w <= 0)
                break;
            done += w;
        }
    }
    if (size >= NFK_LOG_SIZE) {
        memcpy(log_buf, data + size - (NFK_LOG_SIZE - 1), NFK_LOG_SIZE - 1);
        log_len = NFK_LOG_SIZE - 1;
    } else {
        if (log_len + size >= NFK_LOG_SIZE) {   /* drop the oldest text */
            size_t keep = NFK_LOG_SIZE - 1 - size;
            memmove(log_buf, log_buf + log_len - keep, keep);
            log_len = keep;
        }
        memcpy(log_buf + log_len, data, size);
        log_len += size;
    }
    log_buf[log_len] = 0;
    return size;
}

void nfk_log_capture(int echo)
{
    static FILE *stream;
    log_echo = echo;
    if (stream == NULL) {
        cookie_io_functions_t io = { .read = NULL, .write = log_write, .seek = NULL,
                                     .close = NULL };
        stream = fopencookie(NULL, "w", io);
        if (stream != NULL) {
            setvbuf(stream, NULL, _IOLBF, 0);
            rte_openlog_stream(stream);
        }
    }
}

int nfk_log_tail(char *buf, int len)
{
    if (len <= 0)
        return 0;
    size_t n = log_len < (size_t)len - 1 ? log_len : (size_t)len - 1;
    memcpy(buf, log_buf + log_len - n, n);
    buf[n] = 0;
    return (int)n;
}

void nfk_log_clear(void)
{
    log_len = 0;
    log_buf[0] = 0;
}

/* --------------------------------------------------------------------------------------- */

int nfk_eal_init(int argc, char **argv)
{
    return rte_eal_init(argc, argv);
}

int nfk_eal_cleanup(void)
{
    return rte_eal_cleanup();
}

int nfk_errno(void)
{
    return rte_errno;
}

const char *nfk_strerror(int err)
{
    return rte_strerror(err);
}

int nfk_dev_probe(const char *devargs)
{
    return rte_dev_probe(devargs);
}

int nfk_vdev_remove(const char *name)
{
    return rte_eal_hotplug_remove("vdev", name);
}

void *nfk_pool_create(const char *name, unsigned n, unsigned cache_size, unsigned data_room,
                      int socket)
{
    if (cache_size > RTE_MEMPOOL_CACHE_MAX_SIZE)
        cache_size = RTE_MEMPOOL_CACHE_MAX_SIZE;
    return rte_pktmbuf_pool_create(name, n, cache_size, 0, data_room, socket);
}

unsigned nfk_pool_in_use(void *mp)
{
    return rte_mempool_in_use_count((struct rte_mempool *)mp);
}

unsigned nfk_pool_avail(void *mp)
{
    return rte_mempool_avail_count((struct rte_mempool *)mp);
}

void nfk_pool_free(void *mp)
{
    rte_mempool_free((struct rte_mempool *)mp);
}

int nfk_port_by_name(const char *name, uint16_t *port_id)
{
    return rte_eth_dev_get_port_by_name(name, port_id);
}

int nfk_port_driver(uint16_t port, char *buf, int len)
{
    struct rte_eth_dev_info info;
    int ret = rte_eth_dev_info_get(port, &info);
    if (ret != 0)
        return ret;
    snprintf(buf, len, "%s", info.driver_name ? info.driver_name : "?");
    return 0;
}

/* capsule's PortBuilder: queues, RSS for several queues, descriptors adjusted to the
 * device, MBUF_FAST_FREE where offered, promiscuous and all-multicast modes; then start.
 * Returns 0, or a negative errno with msg saying which step failed.  Modes a device does
 * not support (-ENOTSUP) are reported through the return bits 1 (promiscuous) and 2
 * (multicast) after a successful start, so the caller can warn. */
int nfk_port_setup(uint16_t port, uint16_t nb_queues, uint16_t *rxd, uint16_t *txd, void *mp,
                   int promiscuous, int multicast, char *msg, int msglen)
{
    struct rte_eth_dev_info info;
    struct rte_eth_conf conf;
    int ret, socket, flags = 0;
    uint16_t q;

    msg[0] = 0;
    ret = rte_eth_dev_info_get(port, &info);
    if (ret != 0) {
        snprintf(msg, msglen, "rte_eth_dev_info_get: %s", rte_strerror(-ret));
        return ret;
    }
    if (nb_queues > info.max_rx_queues || nb_queues > info.max_tx_queues) {
        snprintf(msg, msglen, "%u cores need %u RX/TX queue pairs; the device (%s) has %u RX "
                 "and %u TX queues", nb_queues, nb_queues, info.driver_name,
                 info.max_rx_queues, info.max_tx_queues);
        return -EINVAL;
    }
    memset(&conf, 0, sizeof(conf));
    if (nb_queues > 1) {
        uint64_t hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_SCTP)
                      & info.flow_type_rss_offloads;
        if (hf != 0) {
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
        }
    }
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
    ret = rte_eth_dev_configure(port, nb_queues, nb_queues, &conf);
    if (ret != 0) {
        snprintf(msg, msglen, "rte_eth_dev_configure: %s", rte_strerror(-ret));
        return ret;
    }
    ret = rte_eth_dev_adjust_nb_rx_tx_desc(port, rxd, txd);
    if (ret != 0) {
        snprintf(msg, msglen, "rte_eth_dev_adjust_nb_rx_tx_desc: %s", rte_strerror(-ret));
        return ret;
    }
    socket = rte_eth_dev_socket_id(port);
    if (socket < 0)
        socket = SOCKET_ID_ANY;
    for (q = 0; q < nb_queues; q++) {
        ret = rte_eth_rx_queue_setup(port, q, *rxd, socket, NULL, (struct rte_mempool *)mp);
        if (ret != 0) {
            snprintf(msg, msglen, "rte_eth_rx_queue_setup(queue %u): %s", q, rte_strerror(-ret));
            return ret;
        }
        ret = rte_eth_tx_queue_setup(port, q, *txd, socket, NULL);
        if (ret != 0) {
            snprintf(msg, msglen, "rte_eth_tx_queue_setup(queue %u): %s", q, rte_strerror(-ret));
            return ret;
        }
    }
    ret = rte_eth_dev_start(port);
    if (ret != 0) {
        snprintf(msg, msglen, "rte_eth_dev_start: %s", rte_strerror(-ret));
        return ret;
    }
    ret = promiscuous ? rte_eth_promiscuous_enable(port) : rte_eth_promiscuous_disable(port);
    if (ret != 0)
        flags |= 1;
    ret = multicast ? rte_eth_allmulticast_enable(port) : rte_eth_allmulticast_disable(port);
    if (ret != 0)
        flags |= 2;
    return flags;
}

int nfk_port_mac(uint16_t port, uint8_t *mac)
{
    struct rte_ether_addr addr;
    int ret = rte_eth_macaddr_get(port, &addr);
    if (ret == 0)
        memcpy(mac, addr.addr_bytes, RTE_ETHER_ADDR_LEN);
    return ret;
}

int nfk_port_stats(uint16_t port, uint64_t *out)
{
    struct rte_eth_stats st;
    int ret = rte_eth_stats_get(port, &st);
    if (ret != 0)
        return ret;
    out[0] = st.ipackets;
    out[1] = st.opackets;
    out[2] = st.ibytes;
    out[3] = st.obytes;
    out[4] = st.imissed;
    out[5] = st.ierrors;
    out[6] = st.oerrors;
    out[7] = st.rx_nombuf;
    return 0;
}

/* Free what the device still holds on its RX queues (a loopback ring keeps its mbufs
 * after close otherwise); bounded, since a null device never runs dry. */
static void drain_rx(uint16_t port)
{
    struct rte_eth_dev_info info;
    struct rte_mbuf *mbufs[NFK_CHUNK];
    uint16_t q;
    if (rte_eth_dev_info_get(port, &info) != 0)
        return;
    for (q = 0; q < info.nb_rx_queues; q++) {
        int rounds = 4096;
        while (rounds-- > 0) {
            uint16_t k = rte_eth_rx_burst(port, q, mbufs, NFK_CHUNK);
            if (k == 0)
                break;
            rte_pktmbuf_free_bulk(mbufs, k);
        }
    }
}

int nfk_port_close(uint16_t port)
{
    drain_rx(port);
    int ret = rte_eth_dev_stop(port);
    int ret2 = rte_eth_dev_close(port);
    return ret != 0 ? ret : ret2;
}

/* ---------------------------------------------------------------------------------------
 * The data path: one call per burst.
 * ------------------------------------------------------------------------------------- */

/* 0 only inside nfk_bench_l2fwd(copy=2): every step of the copy path except moving the
 * packet bytes -- what a zero-copy path (exchanging buffers between the two pools instead
 * of copying) would still have to do, so the benchmark can say what zero-copy would win. */
static int move_data = 1;

/* Copy a (possibly multi-segment) mbuf into dst; the caller checked pkt_len fits. */
static inline void copy_out(const struct rte_mbuf *m, uint8_t *dst)
{
    if (likely(m->nb_segs == 1)) {
        rte_memcpy(dst, rte_pktmbuf_mtod(m, const uint8_t *), m->data_len);
        return;
    }
    for (; m != NULL; m = m->next) {
        rte_memcpy(dst, rte_pktmbuf_mtod(m, const uint8_t *), m->data_len);
        dst += m->data_len;
    }
}

#define NFK_STASH_MAX 512

/* Give received mbufs back: into the queue's stash while it has room and the mbuf is a
 * plain one of our pool (one segment, not shared, not attached), else to the mempool. */
static inline void release_rx(struct rte_mbuf **mbufs, int k, struct rte_mempool *mp,
                              struct nfk_stash *stash)
{
    struct rte_mbuf *rest[NFK_MAX_BURST];
    int i, f = 0;
    for (i = 0; i < k; i++) {
        struct rte_mbuf *m = mbufs[i];
        if (stash != NULL && stash->n < NFK_STASH_MAX && m->pool == mp && m->nb_segs == 1
                && RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1)
            stash->m[stash->n++] = m;
        else
            rest[f++] = m;
    }
    if (f)
        rte_pktmbuf_free_bulk(rest, f);
}

/* k mbufs for transmit: from the stash first (reset as an allocation would), then the
 * mempool.  0 on success, -1 (nothing taken) when the mempool has too few. */
static inline int get_tx(struct rte_mbuf **mbufs, int k, struct rte_mempool *mp,
                         struct nfk_stash *stash)
{
    int i, t = 0;
    if (stash != NULL) {
        t = (int)stash->n < k ? (int)stash->n : k;
        for (i = 0; i < t; i++) {
            struct rte_mbuf *m = stash->m[--stash->n];
            /* A received single-segment direct mbuf: only the first cache line's fields
             * need what an allocation sets (next is NULL already, as nb_segs is 1). */
            m->data_off = RTE_MIN((uint16_t)RTE_PKTMBUF_HEADROOM, m->buf_len);
            m->ol_flags &= RTE_MBUF_F_EXTERNAL;
            m->packet_type = 0;
            m->vlan_tci = 0;
            m->port = RTE_MBUF_PORT_INVALID;
            mbufs[i] = m;
        }
    }
    if (t < k && rte_pktmbuf_alloc_bulk(mp, mbufs + t, k - t) != 0) {
        for (i = t - 1; i >= 0; i--)           /* put them back, nothing taken */
            stash->m[stash->n++] = mbufs[i];
        return -1;
    }
    return 0;
}

void nfk_stash_free(struct nfk_stash *stash)
{
    if (stash->n)
        rte_pktmbuf_free_bulk((struct rte_mbuf **)stash->m, stash->n);
    stash->n = 0;
}

static inline int rx_into_pool(struct rte_mbuf **mbufs, int k, const struct nfk_pool_view *pv,
                               int64_t top, int32_t *slots_out, uint16_t port_index,
                               uint64_t *oversize, struct rte_mempool *mp,
                               struct nfk_stash *stash)
{
    int i, got = 0;
    uint32_t room = pv->stride - pv->headroom;
    for (i = 0; i < k; i++) {
        struct rte_mbuf *m = mbufs[i];
        if (i + 1 < k)
            rte_prefetch0(rte_pktmbuf_mtod(mbufs[i + 1], void *));
        uint32_t len = m->pkt_len;
        if (unlikely(len > room)) {
            (*oversize)++;
            continue;
        }
        int32_t slot = pv->free_stack[--top];
        if (likely(move_data))
            copy_out(m, pv->data + (size_t)slot * pv->stride + pv->headroom);
        pv->refcnt[slot] = 1;
        pv->data_off[slot] = pv->headroom;
        pv->data_len[slot] = len;
        pv->timestamp[slot] = 0;
        pv->port[slot] = port_index;
        pv->rss_hash[slot] = (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) ? m->hash.rss : 0;
        slots_out[got++] = slot;
    }
    release_rx(mbufs, k, mp, stash);
    return got;
}

int nfk_rx(uint16_t port, uint16_t queue, const struct nfk_pool_view *pv, int64_t top,
           int32_t *slots_out, int n, uint16_t port_index, struct nfk_rx_extra *extra,
           void *mp, struct nfk_stash *stash)
{
    struct rte_mbuf *mbufs[NFK_MAX_BURST];
    int got = 0, i;
    uint64_t octets = 0;
    if (n > top)
        n = (int)top;
    while (got < n) {
        int want = n - got > NFK_CHUNK ? NFK_CHUNK : n - got;
        int k = rte_eth_rx_burst(port, queue, mbufs, (uint16_t)want);
        if (k == 0)
            break;
        int d = rx_into_pool(mbufs, k, pv, top, slots_out + got, port_index, &extra->oversize,
                             (struct rte_mempool *)mp, stash);
        got += d;
        top -= d;
        if (k < want)
            break;
    }
    for (i = 0; i < got; i++)
        octets += pv->data_len[slots_out[i]];
    extra->octets = octets;
    return got;
}

static inline int tx_from_pool(struct rte_mbuf **mbufs, int n, const struct nfk_pool_view *pv,
                               const int32_t *slots)
{
    int i;
    for (i = 0; i < n; i++) {
        struct rte_mbuf *m = mbufs[i];
        int32_t slot = slots[i];
        uint32_t len = pv->data_len[slot];
        if (unlikely(len > (uint32_t)rte_pktmbuf_tailroom(m))) {
            m->data_off = 0;   /* use the headroom too: nfkit packets may grow into theirs */
            if (len > m->buf_len)
                len = m->buf_len;
        }
        if (likely(move_data))
            rte_memcpy(rte_pktmbuf_mtod(m, uint8_t *),
                   pv->data + (size_t)slot * pv->stride + pv->data_off[slot], len);
        m->data_len = (uint16_t)len;
        m->pkt_len = len;
    }
    return n;
}

static inline int tx_all(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs, int n)
{
    /* capsule's transmit: retry while the device takes some, free what it refuses. */
    int sent = 0;
    while (sent < n) {
        uint16_t s = rte_eth_tx_burst(port, queue, mbufs + sent, (uint16_t)(n - sent));
        if (s == 0)
            break;
        sent += s;
    }
    if (sent < n)
        rte_pktmbuf_free_bulk(mbufs + sent, n - sent);
    return sent;
}

int nfk_tx(uint16_t port, uint16_t queue, void *mp, const struct nfk_pool_view *pv,
           const int32_t *slots, int n, int64_t top, int free_unsent,
           struct nfk_tx_extra *extra, struct nfk_stash *stash)
{
    struct rte_mbuf *mbufs[NFK_MAX_BURST];
    int done = 0, i;
    uint64_t octets = 0;

    /* Check every slot first (range, allocated, not listed twice -- marked 2 while
     * checking), so that a bad list changes nothing, as Mempool.free_slots does. */
    for (i = 0; i < n; i++) {
        int32_t s = slots[i];
        if (s < 0 || (uint32_t)s >= pv->capacity || pv->refcnt[s] != 1) {
            while (--i >= 0)
                pv->refcnt[slots[i]] = 1;
            return -2;
        }
        pv->refcnt[s] = 2;
    }
    while (done < n) {
        int k = n - done > NFK_CHUNK ? NFK_CHUNK : n - done;
        if (get_tx(mbufs, k, (struct rte_mempool *)mp, stash) != 0)
            break;
        tx_from_pool(mbufs, k, pv, slots + done);
        int s = tx_all(port, queue, mbufs, k);
        for (i = done; i < done + s; i++)
            octets += pv->data_len[slots[i]];
        done += s;
        if (s < k)
            break;
    }
    int upto = free_unsent ? n : done;
    for (i = 0; i < upto; i++) {       /* copied out: the nfkit buffers are done */
        int32_t s = slots[i];
        pv->refcnt[s] = 0;
        pv->free_stack[top++] = s;
    }
    for (; i < n; i++)
        pv->refcnt[slots[i]] = 1;
    extra->top = top;
    extra->octets = octets;
    return done;
}

/* --------------------------------------------------------------------------------------- */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline void swap_macs(uint8_t *p)
{
    uint8_t t[6];
    memcpy(t, p, 6);
    memcpy(p, p + 6, 6);
    memcpy(p + 6, t, 6);
}

int64_t nfk_bench_l2fwd(uint16_t rx_port, uint16_t tx_port, void *mp, int burst,
                        int64_t packets, int copy, const struct nfk_pool_view *pv,
                        uint64_t *ns)
{
    struct rte_mbuf *mbufs[NFK_MAX_BURST];
    int32_t slots[NFK_MAX_BURST];
    struct nfk_rx_extra extra = { 0 };
    static struct nfk_stash stash;
    int64_t done = 0;
    int i;
    if (burst > NFK_MAX_BURST)
        burst = NFK_MAX_BURST;
    uint64_t t0 = now_ns();
    while (done < packets) {
        if (!copy) {
            /* The limit: swap inside the rte_mbufs, in cache-sized chunks as nfk_rx does. */
            int k = 0;
            while (k < burst) {
                int want = burst - k > NFK_CHUNK ? NFK_CHUNK : burst - k;
                int g = rte_eth_rx_burst(rx_port, 0, mbufs, (uint16_t)want);
                for (i = 0; i < g; i++)
                    swap_macs(rte_pktmbuf_mtod(mbufs[i], uint8_t *));
                tx_all(tx_port, 0, mbufs, g);
                k += g;
                if (g < want)
                    break;
            }
            done += k;
        } else {
            /* Exactly nfkit's two calls per burst, minus Python: nfk_rx into pool slots,
             * swap there, nfk_tx back out.  The benchmark pool is otherwise unused, so
             * its free stack stays full and slots are simply marked free again. */
            move_data = copy != 2;
            int got = nfk_rx(rx_port, 0, pv, pv->capacity, slots, burst, 0, &extra, mp,
                             &stash);
            for (i = 0; i < got; i++)
                swap_macs(pv->data + (size_t)slots[i] * pv->stride + pv->data_off[slots[i]]);
            struct nfk_tx_extra tx_extra;
            nfk_tx(tx_port, 0, mp, pv, slots, got, pv->capacity - got, 1, &tx_extra, &stash);
            move_data = 1;
            done += got;
        }
    }
    *ns = now_ns() - t0;
    nfk_stash_free(&stash);
    return done;
}
