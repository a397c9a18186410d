"""Testing tools for NF authors (capsule's ``testils``): hypothesis strategies that build
valid packets from the header declarations.  Needs ``hypothesis`` (``pip install nfkit[dev]``)."""

from .strategies import (field_strategy, header_fields, mac_addrs, packet, sr_tcp, v4_icmp,
                         v4_tcp, v4_udp, v6_icmp, v6_tcp, v6_udp)

__all__ = ["field_strategy", "header_fields", "mac_addrs", "packet", "v4_udp", "v4_tcp",
           "v6_udp", "v6_tcp", "sr_tcp", "v4_icmp", "v6_icmp"]
