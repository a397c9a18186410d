"""Protocol numbers, as :class:`enum.IntEnum` s so they print by name and compare as ints."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["EtherType", "IpProtocol", "DEFAULT_IP_TTL", "IPV4_MIN_MTU", "IPV6_MIN_MTU",
           "VXLAN_PORT", "GTPU_PORT", "VLAN_TPIDS", "IPV6_EXTENSION_HEADERS", "ETH_HLEN",
           "VLAN_TAG_LEN", "IPV4_MIN_HLEN", "IPV6_HLEN", "IPV6_EXT_UNIT", "TCP_MIN_HLEN", "UDP_HLEN",
           "ICMP_MIN_HLEN", "MAX_VLAN_TAGS", "MAX_IPV6_EXT"]


class EtherType(IntEnum):
    """EtherType values (IEEE 802)."""

    IPV4 = 0x0800
    ARP = 0x0806
    TEB = 0x6558          # transparent Ethernet bridging (Ethernet in GRE)
    DOT1Q = 0x8100        # 802.1Q customer VLAN tag
    IPV6 = 0x86DD
    DOT1AD = 0x88A8       # 802.1ad service VLAN tag (QinQ)
    QINQ_LEGACY = 0x9100  # the pre-802.1ad QinQ tag some switches still send


class IpProtocol(IntEnum):
    """IP protocol / IPv6 next-header numbers (IANA)."""

    HOPOPT = 0
    ICMP = 1
    IPIP = 4
    TCP = 6
    UDP = 17
    IPV6 = 41
    IPV6_ROUTE = 43
    IPV6_FRAG = 44
    GRE = 47
    ESP = 50
    AH = 51
    ICMPV6 = 58
    IPV6_NONXT = 59
    IPV6_OPTS = 60


DEFAULT_IP_TTL = 64
IPV4_MIN_MTU = 68
IPV6_MIN_MTU = 1280
VXLAN_PORT = 4789
GTPU_PORT = 2152


# -- what every header walk shares (the per-packet parsers, the burst classifier, kernels'
#    flow_key, the filter): one table, so the walks cannot drift apart --------------------

#: Tag protocol identifiers recognised as VLAN tags (802.1Q, 802.1ad, the legacy 0x9100);
#: a tuple, so compiled code (numba) can test ``t in VLAN_TPIDS`` too.
VLAN_TPIDS = (int(EtherType.DOT1Q), int(EtherType.DOT1AD), int(EtherType.QINQ_LEGACY))
#: IPv6 next-header values walked as extension headers: the generic (next, length in 8-byte
#: units - 1) layout, except the Fragment header (a fixed 8 bytes).
IPV6_EXTENSION_HEADERS = (int(IpProtocol.HOPOPT), int(IpProtocol.IPV6_ROUTE),
                          int(IpProtocol.IPV6_OPTS), int(IpProtocol.IPV6_FRAG))
ETH_HLEN = 14           # destination, source, type
VLAN_TAG_LEN = 4        # TPID + TCI
IPV4_MIN_HLEN = 20      # IHL 5
IPV6_HLEN = 40
IPV6_EXT_UNIT = 8       # extension-header lengths count 8-byte units; the Fragment header is one
TCP_MIN_HLEN = 20       # data offset 5
UDP_HLEN = 8
ICMP_MIN_HLEN = 4       # type, code, checksum (ICMPv4 and ICMPv6)
#: How many VLAN tags and IPv6 extension headers the compiled walks follow (bounded work per
#: packet); a frame with more is not classified past them.
MAX_VLAN_TAGS = 4
MAX_IPV6_EXT = 8
