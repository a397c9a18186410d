"""Testing tools for NF authors (capsule's ``testils``): hypothesis strategies that build
valid packets from the header declarations (``pip install nfkit[dev]`` for ``hypothesis``),
the ``netlab`` pytest fixture (:mod:`.pytest_plugin`) and environment skips that fail under
``CI=true`` (:mod:`.skips`).

The strategies are imported on first use, so the pytest plugin and :mod:`.skips` -- loaded
into every pytest run where nfkit is installed -- work without hypothesis.
"""

from __future__ import annotations

from typing import Any

__all__ = ["field_strategy", "header_fields", "mac_addrs", "packet", "v4_udp", "v4_tcp",
           "v6_udp", "v6_tcp", "sr_tcp", "v4_icmp", "v6_icmp"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import strategies
        return getattr(strategies, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
