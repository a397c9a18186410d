"""nfkit's runtime configuration: a TOML file (capsule's format) validated into pydantic models.

A package rather than one module because it holds four concerns that change for different
reasons (#12):

* :mod:`~nfkit.config.schema` -- the models (:class:`RuntimeConfig` and its tables) and
  loading; the one place a key, its type and its limits are declared.
* :mod:`~nfkit.config.messages` -- :class:`ConfigError`, with each "expected ..." text derived
  from the field's declaration (no table of texts to keep in step with the models).
* :mod:`~nfkit.config.toml` -- TOML output (:meth:`RuntimeConfig.dump`, "got ..." values).
* :mod:`~nfkit.config.devargs` -- PCI addresses and DPDK devargs, as the schema checks them.

The EAL argv built from a config lives with the DPDK driver (:mod:`nfkit.ports._eal`).
Every name below is re-exported so ``from nfkit.config import ...`` keeps working for apps,
tests and the other modules.
"""

from __future__ import annotations

from ..log_levels import LOG_LEVELS, LogLevel
from .devargs import is_pci_address, parse_device_args
from .messages import ConfigError, PortNotFound
from .schema import (Backend, CoreId, MempoolConfig, MetricsConfig, PortConfig, RuntimeConfig,
                     WorkersConfig, load_config)

__all__ = [
    "ConfigError",
    "PortNotFound",
    "MempoolConfig",
    "MetricsConfig",
    "WorkersConfig",
    "PortConfig",
    "RuntimeConfig",
    "LogLevel",
    "LOG_LEVELS",
    "Backend",
    "CoreId",
    "load_config",
    "parse_device_args",
    "is_pci_address",
]
