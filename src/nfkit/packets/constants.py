"""Protocol numbers, as :class:`enum.IntEnum` s so they print by name and compare as ints."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["EtherType", "IpProtocol", "DEFAULT_IP_TTL", "IPV4_MIN_MTU", "IPV6_MIN_MTU",
           "VXLAN_PORT", "GTPU_PORT"]


class EtherType(IntEnum):
    """EtherType values (IEEE 802)."""

    IPV4 = 0x0800
    ARP = 0x0806
    TEB = 0x6558          # transparent Ethernet bridging (Ethernet in GRE)
    DOT1Q = 0x8100        # 802.1Q customer VLAN tag
    IPV6 = 0x86DD
    DOT1AD = 0x88A8       # 802.1ad service VLAN tag (QinQ)


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
