"""Capture link types: what a captured frame starts with, by its file's link type
(https://www.tcpdump.org/linktypes.html), and turning the ones nfkit decodes into Ethernet.

nfkit's packets start at an Ethernet header (link type 1).  Captures of other link layers
carry the same network-layer packets behind another header, or none: raw IP
(``tcpdump -i tun0``: 101, 228, 229, and 12/14, the BSDs' numbers for raw IP, found in
files), Linux "cooked" headers (``tcpdump -i any``: LINUX_SLL 113, LINUX_SLL2 276) and BSD
loopback (NULL 0, LOOP 108).  :func:`to_ethernet` replaces such a header in a buffer by an
Ethernet header with zero addresses and the EtherType the link header names (for raw IP:
the version nibble), so the packet model and the filters apply; what the removed header
said is returned as text (``nfkit dump`` prints it).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .errors import NfkitError
from .net import MacAddr

if TYPE_CHECKING:  # pragma: no cover
    from .buffers import Mbuf

__all__ = ["ETHERNET", "RAW", "IPV4", "IPV6", "LINUX_SLL", "LINUX_SLL2", "NULL", "LOOP",
           "DECODED", "LinkTypeError", "describe", "link_header", "to_ethernet"]

NULL, ETHERNET, RAW, LOOP, LINUX_SLL, IPV4, IPV6, LINUX_SLL2 = 0, 1, 101, 108, 113, 228, 229, 276
_RAW_BSD = (12, 14)

_NAMES = {0: "NULL", 1: "ETHERNET", 6: "IEEE802_5", 9: "PPP", 10: "FDDI", 12: "RAW",
          14: "RAW", 50: "PPP_HDLC", 51: "PPP_ETHER", 101: "RAW", 104: "C_HDLC",
          105: "IEEE802_11", 108: "LOOP", 113: "LINUX_SLL", 127: "IEEE802_11_RADIOTAP",
          220: "USB_LINUX_MMAPPED", 228: "IPV4", 229: "IPV6", 253: "NETLINK",
          276: "LINUX_SLL2"}

#: the link types :func:`to_ethernet` converts (Ethernet itself needs no conversion)
DECODED = frozenset({NULL, ETHERNET, RAW, LOOP, LINUX_SLL, IPV4, IPV6, LINUX_SLL2, *_RAW_BSD})

_IPV4_TYPE, _IPV6_TYPE = 0x0800, 0x86DD
# Address families of IPv6 in loopback headers: Linux, NetBSD/OpenBSD, FreeBSD, macOS.
_AF_INET6 = frozenset({10, 24, 28, 30})
# sll_pkttype, named as tcpdump names them
_DIRECTIONS = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}


class LinkTypeError(NfkitError):
    """A captured frame's link-layer header cannot be turned into Ethernet (a link type
    nfkit does not decode, a header cut short, a payload protocol it does not name)."""


def describe(linktype: int) -> str:
    """``'101 (RAW)'``: the number and tcpdump's name for it."""
    return f"{linktype} ({_NAMES.get(linktype, 'unknown')})"


def _by_version(data: bytes | memoryview, at: int) -> int | None:
    if len(data) <= at:
        return None
    return {4: _IPV4_TYPE, 6: _IPV6_TYPE}.get(data[at] >> 4)


def _cooked(data: bytes | memoryview, v2: bool) -> tuple[int, int | None, str]:
    size = 20 if v2 else 16
    if len(data) < size:
        raise LinkTypeError(f"LINUX_SLL{'2' if v2 else ''} header cut short: {size} bytes "
                            f"needed, {len(data)} captured")
    if v2:
        proto, _res, ifindex, _hatype, pkttype, halen = struct.unpack_from(">HHIHBB", data)
        addr = bytes(data[12:12 + min(halen, 8)])
        head = f"SLL2 if {ifindex} "
    else:
        pkttype, _hatype, halen, proto = struct.unpack_from(">HHH8xH", data)
        addr = bytes(data[6:6 + min(halen, 8)])
        head = "SLL "
    where = _DIRECTIONS.get(pkttype, f"pkttype {pkttype}")
    text = head + where + (f" {MacAddr(addr)}" if len(addr) == 6 else
                           f" {addr.hex(':')}" if addr else "")
    # Below 0x0600 the field is not an EtherType (802.3 length-coded frames, CAN, ...).
    return size, proto if proto >= 0x0600 else None, text


def link_header(linktype: int, data: bytes | memoryview) -> tuple[int, int | None, str]:
    """``(header length, EtherType of what follows or None, description)`` of the link-layer
    header at the start of ``data`` (a captured frame of ``linktype``); Ethernet is
    ``(0, None, "")``.  Raises :class:`LinkTypeError` for a link type nfkit does not decode
    or a header cut short."""
    if linktype == ETHERNET:
        return 0, None, ""
    if linktype in (RAW, *_RAW_BSD):
        return 0, _by_version(data, 0), ""
    if linktype == IPV4:
        return 0, _IPV4_TYPE, ""
    if linktype == IPV6:
        return 0, _IPV6_TYPE, ""
    if linktype in (LINUX_SLL, LINUX_SLL2):
        return _cooked(data, linktype == LINUX_SLL2)
    if linktype in (NULL, LOOP):
        if len(data) < 4:
            raise LinkTypeError(f"{_NAMES[linktype]} header cut short: 4 bytes needed, "
                                f"{len(data)} captured")
        # NULL: the capturing host's byte order, unknown here -- the family is small, so
        # whichever order gives a small number is the right one.
        fam = struct.unpack_from(">I" if linktype == LOOP else "<I", data)[0]
        if linktype == NULL and fam > 0xFFFF:
            fam = struct.unpack_from(">I", data)[0]
        et = _IPV4_TYPE if fam == 2 else _IPV6_TYPE if fam in _AF_INET6 else None
        return 4, et, "" if et is not None else f"{_NAMES[linktype]} family {fam}"
    raise LinkTypeError(f"link type {describe(linktype)} is not decoded")


def to_ethernet(mbuf: "Mbuf", linktype: int) -> str:
    """Replace the link-layer header of ``mbuf`` (a frame of ``linktype``) by an Ethernet
    header carrying the same protocol, with zero addresses; returns the description of the
    removed header ("" when it said nothing an IP header does not).  Raises
    :class:`LinkTypeError` (``mbuf`` unchanged) when that cannot be done."""
    from .packets.ethernet import Ethernet
    size, ethertype, text = link_header(linktype, mbuf.view()[:24])
    if linktype == ETHERNET:
        return ""
    if ethertype is None:
        what = text or "raw IP packet of unknown version"
        raise LinkTypeError(f"{what}: the payload protocol is not one nfkit decodes")
    if size:
        mbuf.shrink(0, size)
    mbuf.push(Ethernet).ether_type = ethertype
    return text
