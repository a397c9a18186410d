"""Longest-prefix-match route tables with batch lookups: :class:`Lpm4` and :class:`Lpm6`.

What and why
------------
A router NF looks up the destination of every packet of a burst in its route table.  nfkit
holds a burst as numpy columns (IPv4 destinations as a ``uint32`` column ``(N,)``, IPv6
destinations as ``(N, 16)`` ``uint8`` rows), so the lookup must take a whole column and
answer a whole column of next hops, with no Python loop per packet, while routes are added
and deleted between bursts.

Next hops are integers ``0 .. NEXT_HOP_MAX`` (``2**24 - 1``, the 24 bits DPDK's ``rte_lpm``
stores); a lookup answers an ``int64`` column holding the next hop of the longest prefix
that contains each address, or the table's ``default`` (``-1`` unless chosen otherwise)
where no route matches.

IPv4: DIR-24-8 (:class:`Lpm4`)
------------------------------
The layout of DPDK's ``rte_lpm``:

- ``tbl24``: ``2**24`` ``uint32`` entries, one per /24 (indexed by the top 24 address bits);
- ``tbl8``: ``max_tbl8_groups`` groups of 256 ``uint32`` entries, one per address of a /24
  that holds at least one route longer than /24.

Every entry packs four fields into 32 bits::

    bit 31      valid      a route covers this entry
    bit 30      extended   (tbl24 only) bits 0-23 index a tbl8 group
    bits 24-29  depth      prefix length of the route that filled the entry (0-32)
    bits 0-23   next hop   or tbl8 group index

An empty entry is ``0``.  An extended entry is ``0xFF000000 | group`` (its depth field reads
63), so for every valid, non-extended entry of depth ``d`` the top byte is ``0x80 | d``:
"empty, or filled by a route no longer than ``d``" is the single comparison
``entry < (0x80 | (d + 1)) << 24``, and extended entries never pass it.

- Lookup: one gather ``tbl24[addr >> 8]``; for the extended entries only, one gather
  ``tbl8[group * 256 + (addr & 0xFF)]``.  O(N), two numpy gathers.
- Add ``/d``, ``d <= 24``: the ``2**(24-d)`` tbl24 entries of the prefix (a /8 is a
  65536-entry slice) take the new entry where they hold a route no longer than ``d``
  (longer routes stay); the tbl8 groups hanging from extended entries in that range get
  the same masked write.  Add ``/d``, ``d > 24``: the /24's tbl8 group (allocated, and
  filled with the tbl24 entry it replaces, if the /24 had none) takes the masked write on
  its ``2**(32-d)`` entries.  Replacing a route of the same prefix is the same write.
- Delete ``/d``: a rule table (``dict`` ``(network, length) -> next hop``) gives the
  covering route, the longest remaining rule shorter than ``d`` containing the prefix (at
  most ``d`` dict probes).  Entries of the range whose depth is exactly ``d`` were filled
  by the deleted route; they take the covering route's entry (or become empty).  A tbl8
  group whose 256 entries become equal with depth ``<= 24`` -- no route longer than /24
  is left in its /24 -- is folded back into its tbl24 entry and freed.

Updates cost O(size of the prefix's range), vectorized; a route longer than /24 needs a
free tbl8 group for its /24 (:class:`Tbl8Exhausted` otherwise, nothing changed).

Memory: ``tbl24`` is 64 MiB (``2**24 * 4`` bytes), ``tbl8`` 1 KiB per group.  Both come from
``np.zeros``, which on Linux maps zero pages lazily: a table only costs the pages its
routes have written (a /8 touches 256 KiB; a /0 touches all 64 MiB).

IPv6: a 16-bit first stage, length filters, one hash table (:class:`Lpm6`)
--------------------------------------------------------------------------
A route is either short (length 0-16) or long (17-128):

- ``tbl16``: ``2**16`` ``uint32`` entries indexed by the first 16 address bits, laid out as
  Lpm4's entries (valid, depth, next hop), holding the best short route of each /16.
  Updated exactly as tbl24 above (masked range writes; delete restores the covering route).
- one open-addressing hash table (linear probing, load at most 1/2, power-of-two capacity)
  from ``(hi, lo, length)`` -- the masked network as two ``uint64`` words and its length --
  to the next hop, holding every long route.
- length bitmaps (112 bits, lengths 17-128, as two ``uint64`` words) saying which long
  lengths are worth probing for an address: one per /16 (direct), and for each filter
  level ``b`` in 24, 32, 48, 64 one per bucket of a ``2**16``-bucket table, where a long
  route of length ``>= b`` marks its length in the bucket its first ``b`` bits hash to
  (a Bloom-filter-like superset: a bucket shared by several prefixes only lets more
  lengths through, never fewer).  A count per marked bit tells when a delete clears it.

A batch lookup splits the addresses into ``hi``/``lo`` columns and gathers ``tbl16`` (the
answer if no long route matches).  It ANDs the address's /16 bitmap with its bucket
bitmap of each level (lengths below a level pass that level), expands the surviving bits
into (row, length) pairs through 256-entry tables of each byte's set bits, masks each
pair's address to its length and probes the hash table for all pairs at once; each row's
longest hit wins.  The probe runs in rounds, one slot per unresolved key, comparing the
stored 64-bit hash and checking the full key on a match; only keys that met another key's
slot go on to the next round.

- Lookup: a fixed number of numpy calls per batch plus one round per probe step (the
  longest probe sequence met, ~10 at 10,000 routes); element work O(N + P) for P pairs.
  P per address is about the number of distinct lengths on the address's path: lengths
  17-23 under its /16, 24-31 under its /24 bucket, 32-47 under its /32 bucket and so on,
  plus bucket-sharing false positives; at most 112.  No Python loop over packets or
  over lengths.

  Why not one hash table per length, probed longest first: that walk pays some 20 numpy
  calls per distinct length even when few addresses are left, about 50 µs a length, so
  a table with many lengths costs milliseconds per batch whatever the batch size (0.04 M
  lookups/s at 128 lengths, measured).  Why the filter levels: with the /16 bitmap alone,
  a /16 crowded with routes of many lengths (as 2a00::/12 is in real tables) made every
  address under it probe every length (24 pairs an address in a BGP-like test, 0.8 M
  lookups/s; 5.5 pairs and 1.9 M/s with the filters).
- Add/delete of a long route: O(1) expected (a scalar insert; doubling rehashes,
  amortized O(1); delete shifts the rest of the cluster back, no tombstones) plus one
  bitmap count per filter level.  Of a short route: a masked write over its
  ``2**(16-length)`` tbl16 entries (all 65536 for ::/0).
- Memory: tbl16 256 KiB, /16 bitmaps 1 MiB, filter bitmaps 4 MiB (lazy zeros: touched
  pages only), the hash table 33 bytes a slot.

Concurrency: neither table locks.  Update between bursts, from the thread that looks up
(as an NF's control path would between ``run_once`` calls).
"""

from __future__ import annotations

import ipaddress
import operator
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import SupportsIndex

import numpy as np
import numpy.typing as npt

from ..errors import NfkitError
from .jit import _jit

__all__ = [
    "NEXT_HOP_MAX",
    "Lpm4",
    "Lpm6",
    "LpmError",
    "BadPrefix",
    "BadNextHop",
    "RouteNotFound",
    "Tbl8Exhausted",
]

#: Largest next hop either table stores (24 bits, as in ``rte_lpm``).
NEXT_HOP_MAX = (1 << 24) - 1

Prefix4 = str | IPv4Network
Prefix6 = str | IPv6Network


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

class LpmError(NfkitError):
    """Base class of the route-table errors."""


class BadPrefix(LpmError, ValueError):
    """A prefix is malformed, of the other address family, or has host bits set."""


class BadNextHop(LpmError, ValueError):
    """A next hop lies outside ``0 .. NEXT_HOP_MAX``."""


class RouteNotFound(LpmError, KeyError):
    """``delete`` of a prefix the table has no route for."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class Tbl8Exhausted(LpmError):
    """Every tbl8 group is in use; the route longer than /24 was not added."""


# ---------------------------------------------------------------------------------------
# Argument checking shared by both tables
# ---------------------------------------------------------------------------------------

def _parse_prefix(prefix: object, version: int) -> tuple[int, int]:
    """``(network as int, prefix length)`` of an IPv``version`` prefix, or a clear error."""
    table = f"Lpm{version}"
    if isinstance(prefix, (IPv4Network, IPv6Network)):
        net: IPv4Network | IPv6Network = prefix
    elif isinstance(prefix, str):
        text = prefix.strip()
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise BadPrefix(f"{table}: {prefix!r} is not a prefix ({exc})") from None
        if net.version == version and str(net) != text:
            try:
                ipaddress.ip_network(text, strict=True)
            except ValueError:
                raise BadPrefix(f"{table}: {prefix!r} has host bits set (its network is "
                                f"{net})") from None
    else:
        raise TypeError(f"{table}: a prefix is a string like "
                        f"{'10.0.0.0/8' if version == 4 else '2001:db8::/32'!r} or an "
                        f"IPv{version}Network, not {type(prefix).__name__}")
    if net.version != version:
        raise BadPrefix(f"{table}: {str(net)!r} is an IPv{net.version} prefix; {table} "
                        f"holds IPv{version} routes")
    return int(net.network_address), net.prefixlen


def _check_next_hop(next_hop: object, table: str) -> int:
    if isinstance(next_hop, bool):
        raise TypeError(f"{table}: next hop must be an int, not bool")
    try:
        nh = operator.index(next_hop)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{table}: next hop must be an int, not "
                        f"{type(next_hop).__name__}") from None
    if not 0 <= nh <= NEXT_HOP_MAX:
        raise BadNextHop(f"{table}: next hop {nh} outside 0..{NEXT_HOP_MAX} (24 bits)")
    return nh


def _check_default(default: object, table: str) -> int:
    try:
        d = operator.index(default)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{table}: default must be an int") from None
    if not -(1 << 63) <= d < (1 << 63):
        raise ValueError(f"{table}: default {d} does not fit int64")
    return d


def _integer_column(addrs: npt.ArrayLike, dtype: type[np.unsignedinteger], bits: int,
                    what: str) -> np.ndarray:
    """``addrs`` as an array of ``dtype``; other integer dtypes are range-checked."""
    a = np.asarray(addrs)
    if a.dtype == dtype:
        return a
    if a.dtype.kind not in "iu":
        raise TypeError(f"{what} must be an integer array (uint{bits}), not {a.dtype}")
    if a.size and (int(a.min()) < 0 or int(a.max()) >> bits):
        raise ValueError(f"{what}: values outside 0..2**{bits}-1")
    return a.astype(dtype)


# ---------------------------------------------------------------------------------------
# IPv4: DIR-24-8
# ---------------------------------------------------------------------------------------

_VALID = 0x8000_0000          # entries >= this are valid (a route covers them)
_EXT_MIN = 0xC000_0000        # tbl24 entries >= this are extended (valid + extended bits)
_EXT_TAG = 0xFF00_0000        # an extended entry: valid, extended, depth field 63
_LOW24 = 0x00FF_FFFF          # next hop or tbl8 group index


def _entry4(depth: int, next_hop: int) -> int:
    """The entry a ``/depth`` route with ``next_hop`` writes."""
    return ((0x80 | depth) << 24) | next_hop


def _not_longer(depth: int) -> np.uint32:
    """Entries below this are empty or filled by a route of length <= ``depth``."""
    return np.uint32((0x80 | (depth + 1)) << 24)


def _mask4(length: int) -> int:
    return (0xFFFF_FFFF << (32 - length)) & 0xFFFF_FFFF


class Lpm4:
    """IPv4 longest-prefix match, DIR-24-8 as DPDK's ``rte_lpm`` (see the module docstring).

    ``max_tbl8_groups`` bounds how many /24s may hold routes longer than /24 (1 KiB each);
    ``default`` is what :meth:`lookup` answers where no route matches.  ``tbl24`` (64 MiB)
    is allocated with ``np.zeros``, whose pages Linux maps on first write only.
    """

    def __init__(self, max_tbl8_groups: int = 256, default: int = -1) -> None:
        groups = operator.index(max_tbl8_groups)
        if not 0 <= groups <= (1 << 24):
            raise ValueError(f"Lpm4: max_tbl8_groups {groups} outside 0..2**24")
        self.default: int = _check_default(default, "Lpm4")
        self.max_tbl8_groups: int = groups
        self._tbl24 = np.zeros(1 << 24, dtype=np.uint32)
        self._tbl8 = np.zeros(groups * 256, dtype=np.uint32)
        self._groups = self._tbl8.reshape(groups, 256)   # a view: group g is row g
        self._free: list[int] = list(range(groups - 1, -1, -1))  # pop() hands out 0 first
        self._rules: dict[tuple[int, int], int] = {}

    # -- updates -----------------------------------------------------------------------

    def add(self, prefix: Prefix4, next_hop: SupportsIndex) -> None:
        """Route ``prefix`` ("10.0.0.0/8" or an IPv4Network) to ``next_hop`` (0..2**24-1).

        Replaces the route of the same prefix if there is one.  Raises :class:`BadPrefix`
        (malformed, IPv6, host bits set), :class:`BadNextHop`, or :class:`Tbl8Exhausted`
        (a route longer than /24 in a /24 without a tbl8 group while none is free); on
        error the table is unchanged.
        """
        net, depth = _parse_prefix(prefix, 4)
        nh = _check_next_hop(next_hop, "Lpm4")
        new = np.uint32(_entry4(depth, nh))
        below = _not_longer(depth)
        if depth <= 24:
            start = net >> 8
            span = self._tbl24[start:start + (1 << (24 - depth))]
            ext = np.flatnonzero(span >= _EXT_MIN)
            np.putmask(span, span < below, new)
            if ext.size:
                gids = span[ext] & _LOW24
                rows = self._groups[gids]
                np.putmask(rows, rows < below, new)
                self._groups[gids] = rows
        else:
            i24 = net >> 8
            top = int(self._tbl24[i24])
            if top >= _EXT_MIN:
                g = top & _LOW24
            else:
                if not self._free:
                    raise Tbl8Exhausted(
                        f"Lpm4: cannot add {IPv4Network((net, depth))}: all "
                        f"{self.max_tbl8_groups} tbl8 groups are in use (each /24 holding "
                        f"routes longer than /24 needs one); raise max_tbl8_groups")
                g = self._free.pop()
                self._groups[g] = top              # the group starts as its /24 was
                self._tbl24[i24] = _EXT_TAG | g
            lo = net & 0xFF
            span = self._groups[g, lo:lo + (1 << (32 - depth))]
            np.putmask(span, span < below, new)
        self._rules[(net, depth)] = nh

    def delete(self, prefix: Prefix4) -> None:
        """Remove the route of exactly ``prefix``; its addresses fall back to the covering
        (next shorter) route, or to no route.  :class:`RouteNotFound` if there is none."""
        net, depth = _parse_prefix(prefix, 4)
        if self._rules.pop((net, depth), None) is None:
            raise RouteNotFound(f"Lpm4: no route for {IPv4Network((net, depth))}")
        cover = np.uint32(self._covering(net, depth))
        top_byte = 0x80 | depth
        if depth <= 24:
            start = net >> 8
            span = self._tbl24[start:start + (1 << (24 - depth))]
            ext = np.flatnonzero(span >= _EXT_MIN)
            np.putmask(span, (span >> 24) == top_byte, cover)
            if ext.size:
                # Groups keep their routes longer than /24, so none becomes foldable here.
                gids = span[ext] & _LOW24
                rows = self._groups[gids]
                np.putmask(rows, (rows >> 24) == top_byte, cover)
                self._groups[gids] = rows
        else:
            i24 = net >> 8
            g = int(self._tbl24[i24]) & _LOW24
            lo = net & 0xFF
            span = self._groups[g, lo:lo + (1 << (32 - depth))]
            np.putmask(span, (span >> 24) == top_byte, cover)
            row = self._groups[g]
            first = row[0]
            if first < _not_longer(24) and bool((row == first).all()):
                self._tbl24[i24] = first           # no route longer than /24 is left
                self._free.append(g)

    def _covering(self, net: int, depth: int) -> int:
        """Entry of the longest rule shorter than ``depth`` containing the prefix, or 0."""
        for d in range(depth - 1, -1, -1):
            nh = self._rules.get((net & _mask4(d), d))
            if nh is not None:
                return _entry4(d, nh)
        return 0

    # -- lookups -----------------------------------------------------------------------

    def lookup(self, addrs: npt.ArrayLike) -> np.ndarray:
        """Next hops (``int64``, same shape) of a ``uint32`` column of addresses.

        ``default`` where no route matches.  Other integer dtypes are accepted if their
        values fit 32 bits (converted, so ``uint32`` is the fast path).
        """
        a = _integer_column(addrs, np.uint32, 32, "Lpm4.lookup: addresses")
        shape = a.shape
        a = a.reshape(-1)
        e = self._tbl24[a >> 8]
        ext = np.flatnonzero(e >= _EXT_MIN)
        if ext.size:
            e[ext] = self._tbl8[((e[ext] & _LOW24) << 8) | (a[ext] & 0xFF)]
        out = (e & _LOW24).astype(np.int64)
        np.putmask(out, e < _VALID, self.default)
        return out.reshape(shape)

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """``(tbl24, tbl8)``, the live lookup tables, for JIT kernels: pass them to
        :func:`lpm4_lookup` inside a kernel (they change in place as routes change)."""
        return self._tbl24, self._tbl8

    def lookup_one(self, addr: int | np.integer | str | IPv4Address) -> int:
        """Next hop of one address (an int, a dotted string or an IPv4Address)."""
        a = int(IPv4Address(int(addr) if isinstance(addr, np.integer) else addr))
        e = int(self._tbl24[a >> 8])
        if e >= _EXT_MIN:
            e = int(self._tbl8[((e & _LOW24) << 8) | (a & 0xFF)])
        return e & _LOW24 if e >= _VALID else self.default

    # -- introspection -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, prefix: object) -> bool:
        try:
            return _parse_prefix(prefix, 4) in self._rules
        except (BadPrefix, TypeError):
            return False

    def routes(self) -> list[tuple[IPv4Network, int]]:
        """``(prefix, next hop)`` of every route, by network then length."""
        return [(IPv4Network(key), nh) for key, nh in sorted(self._rules.items())]

    @property
    def tbl8_groups_used(self) -> int:
        """tbl8 groups in use: the /24s that hold a route longer than /24."""
        return self.max_tbl8_groups - len(self._free)

    def __repr__(self) -> str:
        return (f"Lpm4(routes={len(self)}, tbl8_groups={self.tbl8_groups_used}/"
                f"{self.max_tbl8_groups}, default={self.default})")


# ---------------------------------------------------------------------------------------
# IPv6: a 16-bit first stage and one hash table of (prefix, length)
# ---------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1
_ALL128 = (1 << 128) - 1
_GOLDEN = np.uint64(0x9E37_79B9_7F4A_7C15)
_LEN_MUL = np.uint64(0xD6E8_FEB8_6659_FD93)
_MIX1 = np.uint64(0xBF58_476D_1CE4_E5B9)
_MIX2 = np.uint64(0x94D0_49BB_1331_11EB)


def _mask6(length: int) -> int:
    return _ALL128 ^ ((1 << (128 - length)) - 1)


#: ``hi``/``lo`` word masks of a ``/length`` IPv6 prefix, indexed by length.
_HI_MASKS = np.array([_mask6(n) >> 64 for n in range(129)], dtype=np.uint64)
_LO_MASKS = np.array([_mask6(n) & _M64 for n in range(129)], dtype=np.uint64)


def _hash_keys(hi: np.ndarray, lo: np.ndarray, length: np.ndarray) -> np.ndarray:
    """64-bit hashes of ``(hi, lo, length)`` keys, all ``uint64`` columns: the splitmix64
    finalizer over ``hi ^ lo * c1 ^ length * c2`` (array arithmetic wraps mod 2**64)."""
    h = hi ^ (lo * _GOLDEN) ^ (length * _LEN_MUL)
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


def _hash_one(hi: int, lo: int, length: int) -> int:
    # Through the array function, so scalar updates and batch probes hash alike.
    return int(_hash_keys(np.array([hi], np.uint64), np.array([lo], np.uint64),
                          np.array([length], np.uint64))[0])


class _PrefixTable:
    """Open addressing with linear probing, from ``(hi, lo, length)`` to a value >= 0.

    Parallel arrays ``hi``, ``lo`` (``uint64``), ``length`` (``uint8``), ``h`` (the key's
    hash, kept so growing and deleting never rehash) and ``val`` (``int64``, -1 in empty
    slots).  Capacity is a power of two and the load at most 1/2, so every probe sequence
    meets an empty slot.
    """

    __slots__ = ("hi", "lo", "length", "h", "val", "mask", "count")

    def __init__(self, capacity: int = 16) -> None:
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        self.hi = np.zeros(capacity, dtype=np.uint64)
        self.lo = np.zeros(capacity, dtype=np.uint64)
        self.length = np.zeros(capacity, dtype=np.uint8)
        self.h = np.zeros(capacity, dtype=np.uint64)
        self.val = np.full(capacity, -1, dtype=np.int64)
        self.mask = capacity - 1
        self.count = 0

    def _find(self, hi: int, lo: int, length: int, h: int) -> int:
        """Slot holding the key, or the empty slot that ends its probe sequence."""
        s = h & self.mask
        while self.val[s] >= 0 and not (self.hi[s] == hi and self.lo[s] == lo
                                        and self.length[s] == length):
            s = (s + 1) & self.mask
        return s

    def _put(self, s: int, hi: int, lo: int, length: int, h: int, value: int) -> None:
        self.hi[s], self.lo[s], self.length[s], self.h[s], self.val[s] = hi, lo, length, h, value

    def insert(self, hi: int, lo: int, length: int, value: int) -> None:
        """Map the key to ``value``, replacing its value if present."""
        h = _hash_one(hi, lo, length)
        s = self._find(hi, lo, length, h)
        if self.val[s] >= 0:
            self.val[s] = value
            return
        if 2 * (self.count + 1) > self.mask + 1:
            self._grow()
            s = self._find(hi, lo, length, h)
        self._put(s, hi, lo, length, h, value)
        self.count += 1

    def _grow(self) -> None:
        used = np.flatnonzero(self.val >= 0)
        old = [self.hi[used].tolist(), self.lo[used].tolist(), self.length[used].tolist(),
               self.h[used].tolist(), self.val[used].tolist()]
        self._allocate(2 * (self.mask + 1))
        for hi, lo, length, h, value in zip(*old):
            s = h & self.mask
            while self.val[s] >= 0:
                s = (s + 1) & self.mask
            self._put(s, hi, lo, length, h, value)
        self.count = len(used)

    def remove(self, hi: int, lo: int, length: int) -> None:
        """Remove a present key; later members of its cluster shift back into the hole
        (backward-shift deletion: no tombstones, probe sequences stay short)."""
        i = self._find(hi, lo, length, _hash_one(hi, lo, length))
        if self.val[i] < 0:
            raise KeyError((hi, lo, length))
        mask = self.mask
        j = i
        while True:
            j = (j + 1) & mask
            if self.val[j] < 0:
                break
            home = int(self.h[j]) & mask
            # The entry at j stays if its home slot lies cyclically in (i, j]: moving it to
            # i would put it before its home, out of reach of its probe sequence.
            if (i < home <= j) if i <= j else (home > i or home <= j):
                continue
            self._put(i, self.hi[j], self.lo[j], self.length[j], self.h[j], self.val[j])
            i = j
        self.val[i] = -1
        self.count -= 1

    def probe(self, hi: np.ndarray, lo: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Values of a batch of keys (``-1`` where absent), probed together.

        Each round looks at one slot per unresolved key: an empty slot ends the key's
        search (absent); a slot whose stored hash equals the key's is checked on the full
        key (a hit ends the search); any other occupied slot sends the key one slot on.
        """
        out = np.full(hi.shape[0], -1, dtype=np.int64)
        h = _hash_keys(hi, lo, length.astype(np.uint64))
        slot = (h & np.uint64(self.mask)).astype(np.intp)
        keys = np.arange(hi.shape[0])              # the keys still searching
        while True:
            v = self.val[slot]
            occupied = v >= 0
            m = np.flatnonzero(occupied & (self.h[slot] == h))
            if m.size:
                s, k = slot[m], keys[m]
                same = np.flatnonzero((self.hi[s] == hi[k]) & (self.lo[s] == lo[k])
                                      & (self.length[s] == length[k]))
                out[k[same]] = v[m[same]]
                occupied[m[same]] = False          # resolved
            rest = np.flatnonzero(occupied)
            if not rest.size:
                return out
            keys, h = keys[rest], h[rest]
            slot = (slot[rest] + 1) & self.mask


_STAGE = 16                        # bits of the direct first stage
#: Filter levels: a route of length >= b marks its length in the bucket its first b bits
#: hash to, and an address only probes the lengths >= b marked in its own bucket.
_LEVELS = (24, 32, 48, 64)
_FILTER_BUCKET_BITS = 16           # 2**16 buckets a level (1 MiB each, lazily zeroed)
_FIB = 0x9E37_79B9_7F4A_7C15       # multiplicative hashing of a level's leading bits
_LEVEL_SHIFTS = np.array([64 - b for b in _LEVELS], dtype=np.uint64)


def _length_bit(length: int) -> tuple[int, int]:
    """Where a length 17..128 sits in a bitmap of two uint64 words: (word, mask).

    Position ``c = 128 - length`` counts from the most significant bit of word 0, so the
    bitmap read as 16 big-endian bytes lists lengths longest first.
    """
    c = 128 - length
    return c >> 6, 1 << (63 - (c & 63))


def _bitmap(lengths: range) -> np.ndarray:
    words = [0, 0]
    for n in lengths:
        word, m = _length_bit(n)
        words[word] |= m
    return np.array(words, dtype=np.uint64)


#: For each level, the lengths it does not filter (17 .. b-1): they always pass.
_LEVEL_PASS = np.stack([_bitmap(range(_STAGE + 1, b)) for b in _LEVELS])
#: Set bits of a byte: how many, and their positions from the most significant (0) down.
_POPCOUNT8 = np.array([v.bit_count() for v in range(256)], dtype=np.intp)
_BITPOS8 = np.array([[b for b in range(8) if v & (0x80 >> b)] + [0] * (8 - v.bit_count())
                     for v in range(256)], dtype=np.intp)


def _expand(bitmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(row, length)`` of every set bit of ``(N, 2)`` length bitmaps, rows ascending and
    each row's lengths longest first.

    Reads the bitmaps as big-endian bytes and expands each nonzero byte through the
    256-entry tables of its set bits, so the work follows the bytes that are set.
    """
    raw = bitmaps.astype(">u8").view(np.uint8).reshape(-1)     # 16 bytes a row
    cells = np.flatnonzero(raw != 0)                            # row * 16 + byte
    values = raw[cells]
    counts = _POPCOUNT8[values]
    pairs = np.repeat(cells, counts)
    # The k-th set bit of its byte: its rank among the pairs of the same cell.
    rank = np.arange(pairs.size) - np.repeat(np.cumsum(counts) - counts, counts)
    bit = _BITPOS8[np.repeat(values, counts), rank]
    rows, byte = np.divmod(pairs, 16)
    return rows, 128 - (byte * 8 + bit)


class Lpm6:
    """IPv6 longest-prefix match with batch lookups (see the module docstring).

    A direct table over the first 16 address bits answers the routes of length 0..16;
    length bitmaps (per /16, and per hashed bucket of the first 24, 32, 48 and 64 bits)
    name the longer lengths worth probing; one hash table of ``(prefix, length)`` holds
    the routes longer than /16.  ``default`` is what :meth:`lookup` answers where no
    route matches.
    """

    def __init__(self, default: int = -1) -> None:
        self.default: int = _check_default(default, "Lpm6")
        self._rules: dict[tuple[int, int], int] = {}
        self._per_length: dict[int, int] = {}          # length -> number of routes
        # Routes /0../16, entries laid out as Lpm4's (valid, depth, next hop).
        self._tbl16 = np.zeros(1 << _STAGE, dtype=np.uint32)
        # Length bitmaps (_length_bit) of the routes longer than /16: row t of _cand for
        # those whose first 16 bits are t; row (level << bits) + bucket of _filters for
        # those of length >= b whose first b bits hash to the bucket.  _marks counts the
        # routes behind each bit, (bitmap id, row, length) -> n, to know when it clears.
        self._fbits = _FILTER_BUCKET_BITS
        self._cand = np.zeros((1 << _STAGE, 2), dtype=np.uint64)
        self._filters = np.zeros((len(_LEVELS) << self._fbits, 2), dtype=np.uint64)
        self._level_base = np.arange(len(_LEVELS), dtype=np.intp) << self._fbits
        self._marks: dict[tuple[int, int, int], int] = {}
        self._table = _PrefixTable()

    # -- updates -----------------------------------------------------------------------

    def add(self, prefix: Prefix6, next_hop: SupportsIndex) -> None:
        """Route ``prefix`` ("2001:db8::/32" or an IPv6Network) to ``next_hop``
        (0..2**24-1), replacing the route of the same prefix.  Raises :class:`BadPrefix`
        (malformed, IPv4, host bits set) or :class:`BadNextHop`; then nothing changed."""
        net, length = _parse_prefix(prefix, 6)
        nh = _check_next_hop(next_hop, "Lpm6")
        fresh = (net, length) not in self._rules
        if length <= _STAGE:
            start = net >> (128 - _STAGE)
            span = self._tbl16[start:start + (1 << (_STAGE - length))]
            np.putmask(span, span < _not_longer(length), np.uint32(_entry4(length, nh)))
        else:
            self._table.insert(net >> 64, net & _M64, length, nh)
            if fresh:
                self._mark_all(net, length, +1)
        self._rules[(net, length)] = nh
        if fresh:
            self._per_length[length] = self._per_length.get(length, 0) + 1

    def delete(self, prefix: Prefix6) -> None:
        """Remove the route of exactly ``prefix`` (:class:`RouteNotFound` if none)."""
        net, length = _parse_prefix(prefix, 6)
        if self._rules.pop((net, length), None) is None:
            raise RouteNotFound(f"Lpm6: no route for {IPv6Network((net, length))}")
        if length <= _STAGE:
            cover = 0
            for d in range(length - 1, -1, -1):
                nh = self._rules.get((net & _mask6(d), d))
                if nh is not None:
                    cover = _entry4(d, nh)
                    break
            start = net >> (128 - _STAGE)
            span = self._tbl16[start:start + (1 << (_STAGE - length))]
            np.putmask(span, (span >> 24) == (0x80 | length), np.uint32(cover))
        else:
            self._table.remove(net >> 64, net & _M64, length)
            self._mark_all(net, length, -1)
        n = self._per_length[length] - 1
        if n:
            self._per_length[length] = n
        else:
            del self._per_length[length]

    def _mark_all(self, net: int, length: int, delta: int) -> None:
        """Count a long route in (or out of) its /16 bitmap and its filter buckets."""
        self._mark(0, self._cand, net >> (128 - _STAGE), length, delta)
        hi = net >> 64
        for level, b in enumerate(_LEVELS):
            if b > length:
                break
            bucket = (((hi >> (64 - b)) * _FIB) & _M64) >> (64 - self._fbits)
            self._mark(1, self._filters, (level << self._fbits) + bucket, length, delta)

    def _mark(self, which: int, bitmaps: np.ndarray, row: int, length: int,
              delta: int) -> None:
        key = (which, row, length)
        n = self._marks.get(key, 0) + delta
        word, m = _length_bit(length)
        if n:
            self._marks[key] = n
            if n == 1 and delta > 0:
                bitmaps[row, word] |= np.uint64(m)
        else:
            del self._marks[key]
            bitmaps[row, word] &= np.uint64(~m & _M64)

    # -- lookups -----------------------------------------------------------------------

    def lookup(self, addrs: npt.ArrayLike) -> np.ndarray:
        """Next hops (``int64`` ``(N,)``) of ``(N, 16)`` ``uint8`` addresses (network order).

        ``default`` where no route matches.
        """
        a = np.asarray(addrs)
        if a.ndim != 2 or a.shape[1] != 16:
            raise ValueError(f"Lpm6.lookup: addresses must be (N, 16) uint8, got shape "
                             f"{a.shape}")
        if a.dtype != np.uint8:
            a = _integer_column(a, np.uint8, 8, "Lpm6.lookup: addresses")
        words = np.ascontiguousarray(a).view(">u8").astype(np.uint64)   # (N, 2), native
        hi, lo = words[:, 0], words[:, 1]
        top = (hi >> np.uint64(64 - _STAGE)).astype(np.intp)
        e = self._tbl16[top]
        out = (e & _LOW24).astype(np.int64)
        np.putmask(out, e < _VALID, self.default)
        if not self._table.count:
            return out
        # Lengths worth probing: marked under the /16 and in every level's bucket.
        cand = np.take(self._cand, top, axis=0)                           # (N, 2)
        buckets = (((hi[:, None] >> _LEVEL_SHIFTS) * np.uint64(_FIB))
                   >> np.uint64(64 - self._fbits)).astype(np.intp) + self._level_base
        passed = np.take(self._filters, buckets, axis=0) | _LEVEL_PASS     # (N, levels, 2)
        cand &= np.bitwise_and.reduce(passed, axis=1)
        rows, lengths = _expand(cand)
        if rows.size:
            found = self._table.probe(hi[rows] & _HI_MASKS[lengths],
                                      lo[rows] & _LO_MASKS[lengths],
                                      lengths.astype(np.uint8))
            hit = np.flatnonzero(found >= 0)
            rows, found = rows[hit], found[hit]
            if rows.size:
                first = np.empty(rows.size, dtype=bool)   # a row's first hit is its longest
                first[0] = True
                np.not_equal(rows[1:], rows[:-1], out=first[1:])
                out[rows[first]] = found[first]
        return out

    def lookup_one(self, addr: int | np.integer | str | IPv6Address | bytes) -> int:
        """Next hop of one address (an int, a string, an IPv6Address or 16 bytes).

        Scalar path: probes the rule dict for each long length present, longest first,
        then reads tbl16 -- the answer :meth:`lookup` gives, without numpy per call.
        """
        a = int(IPv6Address(int(addr) if isinstance(addr, np.integer) else addr))
        for length in sorted((n for n in self._per_length if n > _STAGE), reverse=True):
            nh = self._rules.get((a & _mask6(length), length))
            if nh is not None:
                return nh
        e = int(self._tbl16[a >> (128 - _STAGE)])
        return e & _LOW24 if e >= _VALID else self.default

    # -- introspection -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, prefix: object) -> bool:
        try:
            return _parse_prefix(prefix, 6) in self._rules
        except (BadPrefix, TypeError):
            return False

    def routes(self) -> list[tuple[IPv6Network, int]]:
        """``(prefix, next hop)`` of every route, by network then length."""
        return [(IPv6Network(key), nh) for key, nh in sorted(self._rules.items())]

    @property
    def prefix_lengths(self) -> tuple[int, ...]:
        """The distinct prefix lengths present, longest first."""
        return tuple(sorted(self._per_length, reverse=True))

    def __repr__(self) -> str:
        return (f"Lpm6(routes={len(self)}, lengths={len(self._per_length)}, "
                f"default={self.default})")


@_jit
def lpm4_lookup(tbl24: np.ndarray, tbl8: np.ndarray, addr: int, default: int) -> int:
    """One DIR-24-8 lookup (what :meth:`Lpm4.lookup` does for a column) -- compiled with
    numba when installed, so a kernel can route inside its per-packet loop (see
    :meth:`Lpm4.tables`)."""
    e = tbl24[addr >> 8]
    if e >= 0xC0000000:
        e = tbl8[((e & 0xFFFFFF) << 8) | (addr & 0xFF)]
    if e < 0x80000000:
        return default
    return e & 0xFFFFFF
