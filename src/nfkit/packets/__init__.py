"""Typed packet headers over :class:`~nfkit.Mbuf` buffers (capsule's ``packets``)."""

from .base import Packet
from .constants import EtherType, IpProtocol
from .ethernet import Ethernet, VlanTag
from .fields import Field
from .ip import Flow
from .ipv4 import Ipv4
from .ipv6 import Ipv6
from .tcp import Tcp
from .udp import Udp

__all__ = ["Packet", "Field", "EtherType", "IpProtocol", "Ethernet", "VlanTag", "Flow",
           "Ipv4", "Ipv6", "Tcp", "Udp"]
