"""Typed packet headers over :class:`~nfkit.Mbuf` buffers (capsule's ``packets``).

One module per protocol; every header class is declared once (see :mod:`.fields`).
ICMPv4 message classes are exported under their plain names (``EchoRequest``); their
ICMPv6 counterparts with an ``Icmpv6`` prefix (``Icmpv6EchoRequest``), and NDP under
:mod:`nfkit.packets.ndp` names (``NeighborSolicitation``, ``NdpRedirect``).
"""

from . import arp, gre, gtpu, icmpv4, icmpv6, ipv6ext, ndp, vxlan
from .arp import Arp, ArpOp
from .base import Packet
from .constants import EtherType, IpProtocol
from .ethernet import Ethernet, VlanTag
from .fields import Field
from .gre import Gre
from .gtpu import GtpMessageType, GtpU
from .icmpv4 import (DestinationUnreachable, EchoReply, EchoRequest, Icmpv4, Icmpv4Type,
                     ParameterProblem, Redirect, TimeExceeded)
from .icmpv6 import DestinationUnreachable as Icmpv6DestinationUnreachable
from .icmpv6 import EchoReply as Icmpv6EchoReply
from .icmpv6 import EchoRequest as Icmpv6EchoRequest
from .icmpv6 import Icmpv6, Icmpv6Type, PacketTooBig
from .icmpv6 import ParameterProblem as Icmpv6ParameterProblem
from .icmpv6 import TimeExceeded as Icmpv6TimeExceeded
from .ip import Flow
from .ipv4 import Ipv4
from .ipv6 import Ipv6
from .ipv6ext import Fragment, SegmentRouting
from .ndp import (LinkLayerAddress, Mtu, NdpOption, NdpOptionType, NeighborAdvertisement,
                  NeighborSolicitation, PrefixInformation, RedirectedHeader,
                  RouterAdvertisement, RouterSolicitation)
from .ndp import Redirect as NdpRedirect
from .tcp import Tcp
from .udp import Udp
from .vxlan import Vxlan

__all__ = [
    "Packet", "Field", "EtherType", "IpProtocol", "Flow",
    "Ethernet", "VlanTag", "Arp", "ArpOp", "Ipv4", "Ipv6", "Fragment", "SegmentRouting",
    "Tcp", "Udp", "Gre", "Vxlan", "GtpU", "GtpMessageType",
    "Icmpv4", "Icmpv4Type", "EchoRequest", "EchoReply", "DestinationUnreachable",
    "TimeExceeded", "Redirect", "ParameterProblem",
    "Icmpv6", "Icmpv6Type", "Icmpv6EchoRequest", "Icmpv6EchoReply",
    "Icmpv6DestinationUnreachable", "PacketTooBig", "Icmpv6TimeExceeded",
    "Icmpv6ParameterProblem",
    "RouterSolicitation", "RouterAdvertisement", "NeighborSolicitation",
    "NeighborAdvertisement", "NdpRedirect", "NdpOption", "NdpOptionType", "LinkLayerAddress",
    "PrefixInformation", "Mtu", "RedirectedHeader",
    "arp", "gre", "gtpu", "icmpv4", "icmpv6", "ipv6ext", "ndp", "vxlan",
]
