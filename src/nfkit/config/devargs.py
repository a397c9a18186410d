"""Device names and device arguments as the config checks them: PCI address or virtual
device, and DPDK devargs (``rx_pcap=a.pcap,tx_iface=lo``) split into ``(key, value)`` pairs.

The schema uses these at load time, so a malformed ``args`` is reported with the file and the
port; the port drivers use :func:`parse_device_args` when they open a device.
"""

from __future__ import annotations

import re

from .messages import ConfigError

__all__ = ["PCI_ADDRESS", "is_pci_address", "parse_device_args", "DevargsProblem",
           "split_devargs"]

#: A PCI address "domain:bus:device.function" with the domain optional, hexadecimal digits.
PCI_ADDRESS = re.compile(r"(?:[0-9A-Fa-f]{4}:)?[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]", re.ASCII)
# A devargs key: what DPDK drivers use (rx_pcap, tx_iface, nodeaction, ...).
_DEVARG_KEY = re.compile(r"[A-Za-z0-9_.\-]+", re.ASCII)


def is_pci_address(device: str) -> bool:
    """Whether ``device`` names a PCI device (``0000:00:08.0`` or ``00:08.0``) rather than a
    DPDK virtual device such as ``net_pcap0``.  EAL takes the two on different options."""
    return PCI_ADDRESS.fullmatch(device) is not None


class DevargsProblem(Exception):
    """One malformed devargs item; the message names the item."""


def split_devargs(args: str) -> list[tuple[str, str]]:
    """Split devargs into ``(key, value)`` pairs, raising :class:`DevargsProblem`.

    Items are separated by commas, except inside ``[...]`` because DPDK list values such as
    ``representor=[0,2]`` contain commas.  Empty items (``a=1,,b=2`` or a trailing comma) are
    skipped, as DPDK's tokenizer skips them.
    """
    items: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(args):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise DevargsProblem(
                    f"malformed device argument {args[start:].split(',')[0]!r} "
                    "(']' without a matching '[')")
        elif ch == "," and depth == 0:
            items.append(args[start:i])
            start = i + 1
    items.append(args[start:])
    if depth > 0:
        raise DevargsProblem(
            f"malformed device argument {items[-1]!r} ('[' without a matching ']')")

    pairs: list[tuple[str, str]] = []
    for item in items:
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise DevargsProblem(f"malformed device argument {item!r} (expected key=value)")
        if not _DEVARG_KEY.fullmatch(key):
            raise DevargsProblem(
                f"malformed device argument {item!r} "
                "(the key must be letters, digits, '_', '.' or '-')")
        if not value:
            raise DevargsProblem(f"malformed device argument {item!r} (the value is empty)")
        pairs.append((key, value))
    return pairs


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
