"""An exact-match hash table whose operations are vectorized over a batch of keys.

What and why
------------
Flow tables, NAT bindings and ARP/ND caches map a fixed-width key (a 5-tuple, an address)
to a small value, and an NF looks up a whole batch of packets at once.  A Python ``dict``
costs a Python-level operation per packet; :class:`ExactMatchTable` keeps everything in
numpy arrays so that a batch of ``N`` lookups is a handful of array operations, and the
table stays updatable while the NF runs (inserts and deletes never rebuild it; only an
occasional amortized rehash on growth or tombstone build-up does).

Keys
----
A key is a fixed-width byte string: a batch is an ``(N, key_width)`` ``uint8`` array.  For
``key_width <= 8`` a batch may also be a 1-D integer array, the key being the big-endian
integer of its bytes (so an IPv4 address column in ``uint32`` is the same key as its four
network-order bytes).  Internally a key is ``W = ceil(key_width / 8)`` ``uint64`` words, each
the big-endian integer of an 8-byte chunk (the last chunk may be shorter); the integer form
of a short key is therefore exactly its single word.

Storage and algorithm
---------------------
* ``keys``: ``(W, slots)`` ``uint64`` (word-major, so each word compare is a 1-D gather),
  ``values``: ``(slots,)`` of ``value_dtype``, ``state``: ``(slots,)`` ``uint8``
  (``EMPTY``/``FULL``/``TOMBSTONE``).  ``slots`` is a power of two.
* Hash: the words are folded with multiply-xorshift steps (``h = (h ^ w) * C; h ^= h >> 29``)
  starting from a per-table seed, then finalized with the murmur3 64-bit mixer; the home
  slot is ``h & (slots - 1)``.  All of it is ``uint64`` array arithmetic (wrapping).  The seed
  is random by default, so remote peers cannot aim collisions at the table (flow keys are
  attacker-controlled); pass ``seed=`` for reproducibility.
* Open addressing with linear probing.  A lookup is a bounded loop over the probe distance:
  each round gathers, for every still-unresolved key, a window of consecutive slots of its
  probe path (1 slot in the first round, then 2, 4, 8, ...), resolves the keys whose window
  holds their key (hit) or an empty slot first (miss), and keeps the rest.  Distances past
  ``max_probe``, the longest probe distance any key was placed at since the last rehash,
  are never examined; normally the loop stops earlier, when no key is left.  Doubling the
  window keeps the rare long probes of linear probing (tens of slots at load 0.75) to a
  logarithmic number of rounds.
* Insert: deduplicate the batch (last occurrence wins), update the keys already present,
  then place the new keys in rounds: every pending key finds the first free (empty or
  tombstone) slot in a window of its probe path (doubling as above) and claims it with one
  scatter (``claim[slot] = i``); the key whose index survived the scatter wins and the
  others go on from there.
  Each key thus takes the first free slot on its probe path that no other batch key took
  first, so no empty slot ever lies between a key's home and its slot (the invariant the
  lookup relies on).
* Delete marks tombstones (a probe passes over them; an insert may reuse them).
* Load: entries are kept ``<= 0.75 * slots``.  Before placing new keys, if entries plus
  tombstones would pass that, the table is rehashed: into twice the slots (repeatedly) if
  the entries alone would pass it, else in place to drop the tombstones.  With
  ``growable=False`` a batch that would pass the limit raises :class:`TableFull` and leaves
  the table unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from ..errors import NfkitError

__all__ = ["ExactMatchTable", "TableFull", "MAX_LOAD"]

MAX_LOAD = 0.75
"""Entries (plus tombstones) are kept at most this fraction of the slots."""

EMPTY, FULL, TOMBSTONE = np.uint8(0), np.uint8(1), np.uint8(2)

_MUL = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)  # murmur3 fmix64 constants
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S29, _S33 = np.uint64(29), np.uint64(33)


class TableFull(NfkitError):
    """An insert into a non-growable :class:`ExactMatchTable` would pass its load limit."""


def _slots_for(entries: int) -> int:
    """The smallest power of two whose ``MAX_LOAD`` share holds ``entries``."""
    slots = 1
    while entries > int(slots * MAX_LOAD):
        slots *= 2
    return slots


class ExactMatchTable:
    """A fixed-width-key hash table with batch (vectorized) lookup, insert and delete.

    ``capacity`` is the number of entries the table must hold without growing: the slot
    count is the smallest power of two keeping the load at most 0.75 for that many.
    Absent keys look up as ``default``.  ``growable=False`` makes an overfull insert raise
    :class:`TableFull` instead of doubling the table.  ``seed`` fixes the hash seed
    (random by default).
    """

    def __init__(
        self,
        key_width: int,
        capacity: int,
        value_dtype: npt.DTypeLike = np.int64,
        default: object = -1,
        *,
        growable: bool = True,
        seed: int | None = None,
    ) -> None:
        if key_width < 1:
            raise ValueError(f"key_width must be >= 1, got {key_width}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.key_width = int(key_width)
        self.value_dtype = np.dtype(value_dtype)
        self.default = np.array(default, dtype=self.value_dtype)
        self.growable = bool(growable)
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        self.seed = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
        self._words = -(-self.key_width // 8)
        rem = self.key_width % 8
        # Byte columns of the big-endian word buffer that hold key bytes: the full chunks,
        # then the last ``rem`` bytes of the last word (a short chunk is right-aligned).
        tail = range(8 * self._words - rem, 8 * self._words) if rem else range(0)
        self._cols = np.r_[np.arange(8 * (self.key_width // 8)), np.array(tail, dtype=np.intp)]
        self._direct = rem == 0  # the key bytes are exactly the word buffer
        self._alloc(_slots_for(int(capacity)))

    # -- storage ----------------------------------------------------------------------

    def _alloc(self, slots: int) -> None:
        """Fresh empty arrays of ``slots`` slots."""
        self._slots = slots
        self._mask = np.uint64(slots - 1)
        self._keys = np.zeros((self._words, slots), dtype=np.uint64)
        self._values = np.zeros(slots, dtype=self.value_dtype)
        self._state = np.zeros(slots, dtype=np.uint8)
        self._claim = np.empty(slots, dtype=np.intp)
        self._count = 0
        self._tombs = 0
        self._max_probe = 0

    @property
    def slots(self) -> int:
        """The number of slots (a power of two)."""
        return self._slots

    @property
    def max_entries(self) -> int:
        """The number of entries the current slots hold within the load limit."""
        return int(self._slots * MAX_LOAD)

    @property
    def max_probe(self) -> int:
        """The longest probe distance of any key placed since the last rehash."""
        return self._max_probe

    @property
    def load_factor(self) -> float:
        """Entries per slot."""
        return self._count / self._slots

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return (f"ExactMatchTable(key_width={self.key_width}, entries={self._count}, "
                f"slots={self._slots}, value_dtype={self.value_dtype})")

    # -- keys and hashing ---------------------------------------------------------------

    def _to_words(self, keys: object) -> np.ndarray:
        """A batch of keys as ``(W, N)`` ``uint64`` words (see the module docstring)."""
        a = np.asarray(keys)
        if a.size == 0:
            return np.zeros((self._words, 0), dtype=np.uint64)
        if a.ndim == 2:
            if a.dtype != np.uint8 or a.shape[1] != self.key_width:
                raise ValueError(
                    f"byte keys must be (N, {self.key_width}) uint8, got {a.shape} {a.dtype}")
            if self._direct:
                buf = np.ascontiguousarray(a)
            else:
                buf = np.zeros((a.shape[0], 8 * self._words), dtype=np.uint8)
                buf[:, self._cols] = a
            return np.ascontiguousarray(buf.view(">u8").astype(np.uint64).T)
        if a.ndim == 1:
            if self.key_width > 8:
                raise ValueError(
                    f"integer keys need key_width <= 8 (this table: {self.key_width}); "
                    f"give (N, {self.key_width}) uint8 rows")
            if a.dtype.kind not in "ui":
                raise TypeError(f"integer keys must have an integer dtype, got {a.dtype}")
            if a.dtype.kind == "i" and int(a.min()) < 0:
                raise ValueError("integer keys must be non-negative")
            w = a.astype(np.uint64)
            if self.key_width < 8 and int(w.max()) >> (8 * self.key_width):
                raise ValueError(f"integer key does not fit in {self.key_width} bytes")
            return w.reshape(1, -1)
        raise ValueError(f"keys must be (N, {self.key_width}) uint8 or a 1-D integer column, "
                         f"got shape {a.shape}")

    def _words_to_bytes(self, words: np.ndarray) -> np.ndarray:
        """``(W, N)`` words back to ``(N, key_width)`` ``uint8`` key bytes."""
        buf = np.ascontiguousarray(words.T).astype(">u8").view(np.uint8)
        return np.ascontiguousarray(buf[:, self._cols])

    def _hash(self, words: np.ndarray) -> np.ndarray:
        """The 64-bit hash of each key: multiply-xorshift fold of its words, murmur3 finish."""
        h = np.full(words.shape[1], self.seed, dtype=np.uint64)
        for w in words:
            h ^= w
            h *= _MUL
            h ^= h >> _S29
        h ^= h >> _S33
        h *= _FMIX1
        h ^= h >> _S33
        h *= _FMIX2
        h ^= h >> _S33
        return h

    def _home(self, words: np.ndarray) -> np.ndarray:
        """The home slot of each key (``intp``)."""
        return (self._hash(words) & self._mask).astype(np.intp)

    # -- the probe loops ------------------------------------------------------------------

    def _find(self, words: np.ndarray) -> np.ndarray:
        """The slot holding each key, or -1 where absent (the bounded probe loop).

        Round ``k`` examines, for every still-unresolved key, a window of ``2**k``
        consecutive slots of its probe path (one ``(m, 2**k)`` gather); a key resolves at
        the first slot of its window holding it (hit) or empty (miss).  So a key at probe
        distance ``d`` costs ``O(log d)`` rounds and at most ``2d + 1`` slot reads, and no
        key is probed past ``max_probe``.
        """
        n = words.shape[1]
        found = np.full(n, -1, dtype=np.intp)
        if n == 0 or self._count == 0:
            return found
        state, keys, mask = self._state, self._keys, self._slots - 1
        limit = self._max_probe + 1  # probe distances 0 .. max_probe
        idx = np.arange(n)  # original positions of the unresolved keys
        q = words  # their words
        pos = self._home(words)  # the first slot of their next window
        start, width = 0, 1
        while True:
            if width == 1:  # the first round, over the whole batch: plain 1-D arrays
                st = state[pos]
                hit = st == FULL
                for j in range(self._words):
                    hit &= keys[j][pos] == q[j]
                found[idx[hit]] = pos[hit]
                more = (st != EMPTY) & ~hit
            else:
                win = (pos[:, None] + np.arange(width)) & mask
                st = state[win]
                hit = st == FULL
                for j in range(self._words):
                    hit &= keys[j][win] == q[j][:, None]
                stop = hit | (st == EMPTY)
                first = stop.argmax(axis=1)
                rows = np.arange(win.shape[0])
                more = ~stop[rows, first]
                r = np.flatnonzero(hit[rows, first])
                found[idx[r]] = win[r, first[r]]
            start += width
            if start >= limit or not more.any():
                return found
            idx, q, pos = idx[more], q[:, more], (pos[more] + width) & mask
            width = min(2 * width, limit - start)

    def _place(self, words: np.ndarray, values: np.ndarray) -> None:
        """Store distinct keys known to be absent, with their values (rounds of claims).

        Each round, every pending key finds the first free (non-full) slot in a window of
        its probe path (the window doubles each round, as in :meth:`_find`) and claims it
        with one scatter; the claimant whose index survived the scatter wins the slot.
        Losers go on from the slot they lost (now full), keys without a free slot in their
        window from the window's end; so every slot a key passes is full.
        """
        n = words.shape[1]
        if n == 0:
            return
        state, keys, vals, claim = self._state, self._keys, self._values, self._claim
        mask = self._slots - 1
        home = self._home(words)
        idx = np.arange(n)
        pos = home.copy()
        longest = self._max_probe
        width = 1
        while idx.size:
            if width == 1:
                cand = pos
                has = state[pos] != FULL
            else:
                win = (pos[:, None] + np.arange(width)) & mask
                free = state[win] != FULL
                first = free.argmax(axis=1)
                rows = np.arange(win.shape[0])
                has = free[rows, first]
                cand = win[rows, first]
            f = np.flatnonzero(has)
            if f.size:
                fpos = cand[f]
                claim[fpos] = f  # one of the claimants of each slot survives
                won = f[claim[fpos] == f]
                s = cand[won]
                src = idx[won]
                self._tombs -= int(np.count_nonzero(state[s] == TOMBSTONE))
                state[s] = FULL
                keys[:, s] = words[:, src]
                vals[s] = values[src]
                longest = max(longest, int(((s - home[src]) & mask).max()))
            left = np.ones(idx.size, dtype=bool)
            if f.size:
                left[won] = False
            nxt = np.where(has, cand, (pos + width) & mask)
            idx, pos = idx[left], nxt[left]
            width = min(2 * width, self._slots)
        self._count += n
        self._max_probe = longest

    def _rehash(self, slots: int) -> None:
        """Rebuild into ``slots`` slots, dropping tombstones and resetting ``max_probe``."""
        live = np.flatnonzero(self._state == FULL)
        words = self._keys[:, live]
        values = self._values[live]
        self._alloc(slots)
        self._place(words, values)

    def _make_room(self, new: int) -> None:
        """Ensure ``new`` more keys can be placed within the load limit (or raise)."""
        limit = self.max_entries
        if self._count + new > limit:
            if not self.growable:
                raise TableFull(
                    f"{self._count} entries + {new} new would pass the load limit of "
                    f"{limit} ({MAX_LOAD:.0%} of {self._slots} slots)")
            self._rehash(_slots_for(self._count + new))
        elif self._count + self._tombs + new > limit:
            self._rehash(self._slots)

    @staticmethod
    def _last_of_each(words: np.ndarray) -> np.ndarray:
        """Indices of the last occurrence of each distinct key, in increasing order."""
        n = words.shape[1]
        if n < 2:
            return np.arange(n)
        order = np.lexsort((np.arange(n), *words[::-1]))  # by key, then by position
        sw = words[:, order]
        last = np.ones(n, dtype=bool)
        last[:-1] = (sw[:, 1:] != sw[:, :-1]).any(axis=0)
        return np.sort(order[last])

    # -- the batch API ---------------------------------------------------------------------

    def lookup(self, keys: object, default: object = None) -> np.ndarray:
        """The value of each key, ``default`` (the table's, if None) where absent."""
        words = self._to_words(keys)
        slots = self._find(words)
        fill = self.default if default is None else np.array(default, dtype=self.value_dtype)
        out = np.full(words.shape[1], fill, dtype=self.value_dtype)
        hit = slots >= 0
        out[hit] = self._values[slots[hit]]
        return out

    def contains(self, keys: object) -> np.ndarray:
        """A boolean mask: which keys are present."""
        return self._find(self._to_words(keys)) >= 0

    def insert(self, keys: object, values: object) -> None:
        """Insert or update a batch; ``values`` broadcasts to the batch.  Last duplicate wins.

        Atomic with respect to :class:`TableFull`: if raised, the table is unchanged.
        """
        words = self._to_words(keys)
        n = words.shape[1]
        vals = np.broadcast_to(np.asarray(values, dtype=self.value_dtype), (n,))
        if n == 0:
            return
        keep = self._last_of_each(words)
        if keep.size != n:
            words, vals = words[:, keep], vals[keep]
        slots = self._find(words)
        new = slots < 0
        n_new = int(np.count_nonzero(new))
        if not self.growable and self._count + n_new > self.max_entries:
            self._make_room(n_new)  # raises TableFull before anything changed
        old = ~new
        self._values[slots[old]] = vals[old]  # updates first: a rehash moves the slots
        if n_new:
            self._make_room(n_new)
            self._place(words[:, new], vals[new])

    def delete(self, keys: object) -> np.ndarray:
        """Delete a batch of keys (absent ones are ignored); returns which were present."""
        words = self._to_words(keys)
        slots = self._find(words)
        present = slots >= 0
        gone = np.unique(slots[present])
        if gone.size:
            self._state[gone] = TOMBSTONE
            self._count -= gone.size
            self._tombs += gone.size
            if self._count == 0:  # nothing left: forget the tombstones for free probes
                self._state[:] = EMPTY
                self._tombs = 0
                self._max_probe = 0
        return present

    def clear(self) -> None:
        """Remove every entry (keeps the slot count)."""
        self._alloc(self._slots)

    def items(self, integer_keys: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """All entries as ``(keys, values)`` arrays, in slot order.

        ``keys`` is ``(len, key_width)`` ``uint8``, or with ``integer_keys`` (key_width <= 8)
        a ``uint64`` column.
        """
        live = np.flatnonzero(self._state == FULL)
        words = self._keys[:, live]
        if integer_keys:
            if self.key_width > 8:
                raise ValueError("integer_keys needs key_width <= 8")
            return words[0].copy(), self._values[live].copy()
        return self._words_to_bytes(words), self._values[live].copy()

    # -- scalar conveniences -----------------------------------------------------------------

    def _one(self, key: object) -> np.ndarray:
        """A single key as a batch of one, in the form :meth:`_to_words` takes."""
        if isinstance(key, (bytes, bytearray, memoryview)):
            a = np.frombuffer(bytes(key), dtype=np.uint8)
        elif isinstance(key, (int, np.integer)):
            k = int(key)
            if k < 0 or k >> 64:
                raise ValueError(f"integer key out of range: {k}")
            return np.array([k], dtype=np.uint64)
        else:
            a = np.asarray(key, dtype=np.uint8)
        if a.shape != (self.key_width,):
            raise ValueError(f"a key is {self.key_width} bytes, got shape {a.shape}")
        return a.reshape(1, -1)

    def __getitem__(self, key: object) -> object:
        slot = int(self._find(self._to_words(self._one(key)))[0])
        if slot < 0:
            raise KeyError(key)
        return self._values[slot]

    def get(self, key: object, default: object = None) -> object:
        """The value of one key, or ``default`` (``None`` here, like ``dict.get``)."""
        slot = int(self._find(self._to_words(self._one(key)))[0])
        return default if slot < 0 else self._values[slot]

    def __setitem__(self, key: object, value: object) -> None:
        self.insert(self._one(key), np.array([value], dtype=self.value_dtype))

    def __delitem__(self, key: object) -> None:
        if not self.delete(self._one(key))[0]:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return bool(self.contains(self._one(key))[0])

    def __iter__(self) -> Iterator[bytes]:
        """The keys, as ``bytes``."""
        keys, _ = self.items()
        return (row.tobytes() for row in keys)
