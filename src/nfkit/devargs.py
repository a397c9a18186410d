"""Device arguments and PCI addresses: DPDK's ``devargs`` syntax (``rx_pcap=a.pcap,tx_pcap=b.pcap``,
lists in ``[...]``) and ``domain:bus:device.function`` addresses, parsed the way DPDK does.

Used by the config (validation, EAL arguments) and the port registry (each ``[[ports]]``
entry's arguments are parsed once, into its :class:`~nfkit.ports.base.PortPlan`).
"""

from __future__ import annotations

import re

from .errors import NfkitError

__all__ = ["PCI_ADDRESS", "DevargsError", "is_pci_address", "split_device_args"]

#: A PCI address "domain:bus:device.function" with the domain optional, hexadecimal digits.
PCI_ADDRESS = re.compile(r"(?:[0-9A-Fa-f]{4}:)?[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]", re.ASCII)
# A devargs key: what DPDK drivers use (rx_pcap, tx_iface, nodeaction, ...).
_DEVARG_KEY = re.compile(r"[A-Za-z0-9_.\-]+", re.ASCII)


def is_pci_address(device: str) -> bool:
    """Whether ``device`` names a PCI device (``0000:00:08.0`` or ``00:08.0``) rather than a
    DPDK virtual device such as ``net_pcap0``.  EAL takes the two on different options."""
    return PCI_ADDRESS.fullmatch(device) is not None


class DevargsError(NfkitError, ValueError):
    """One malformed device-argument item; the message names the item (the config wraps it
    in a :class:`~nfkit.config.ConfigError` naming the file and field)."""


def split_device_args(args: str) -> list[tuple[str, str]]:
    """Split devargs into ``(key, value)`` pairs, raising :class:`DevargsError`.

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
                raise DevargsError(
                    f"malformed device argument {args[start:].split(',')[0]!r} "
                    "(']' without a matching '[')")
        elif ch == "," and depth == 0:
            items.append(args[start:i])
            start = i + 1
    items.append(args[start:])
    if depth > 0:
        raise DevargsError(
            f"malformed device argument {items[-1]!r} ('[' without a matching ']')")

    pairs: list[tuple[str, str]] = []
    for item in items:
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise DevargsError(f"malformed device argument {item!r} (expected key=value)")
        if not _DEVARG_KEY.fullmatch(key):
            raise DevargsError(
                f"malformed device argument {item!r} "
                "(the key must be letters, digits, '_', '.' or '-')")
        if not value:
            raise DevargsError(f"malformed device argument {item!r} (the value is empty)")
        pairs.append((key, value))
    return pairs
