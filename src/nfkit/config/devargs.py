"""Device names and device arguments as the config checks them: PCI address or virtual
device, and DPDK devargs (``rx_pcap=a.pcap,tx_iface=lo``) split into ``(key, value)`` pairs.

The schema uses these at load time, so a malformed ``args`` is reported with the file and the
port; the port drivers use :func:`parse_device_args` when they open a device.
"""

from __future__ import annotations

from ..devargs import PCI_ADDRESS, is_pci_address
from ..devargs import DevargsError as DevargsProblem
from ..devargs import split_device_args as split_devargs
from .messages import ConfigError

__all__ = ["PCI_ADDRESS", "is_pci_address", "parse_device_args", "DevargsProblem",
           "split_devargs"]

# The splitting and the PCI pattern live in :mod:`nfkit.devargs` (the port drivers use them
# without the config); this module adds the config's error, naming the file and the field.


def parse_device_args(args: str | None, *, source: str = "<string>",
                      field: str = "args") -> list[tuple[str, str]]:
    """Split DPDK devargs such as ``"rx_pcap=a.pcap,tx_pcap=b.pcap"`` into ordered pairs.

    Returns ``[("rx_pcap", "a.pcap"), ("tx_pcap", "b.pcap")]``; ``None`` or ``""`` gives
    ``[]``.  Keys may repeat (``rx_pcap=a.pcap,rx_pcap=b.pcap`` opens two rx queues in DPDK's
    pcap driver), so the result is a list rather than a dict.  Commas inside ``[...]`` do not
    split, and empty items are skipped, both as DPDK does.

    Raises :class:`ConfigError` naming the malformed item (no ``=``, an empty or odd key, an
    empty value, unbalanced brackets); ``source`` and ``field`` label the error.
    """
    if not args:
        return []
    try:
        return split_devargs(args)
    except DevargsProblem as problem:
        raise ConfigError(source, [(field, str(problem))]) from None
