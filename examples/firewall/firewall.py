"""firewall: an ordered ACL of CIDR / port / protocol rules, first match wins.

Rules live in ``rules.toml`` beside this file (or the file named by the NFKIT_RULES
environment variable)::

    default = "deny"
    [[rules]]
    action = "allow"        # allow | deny
    proto = "tcp"           # tcp | udp | icmp | any (icmp covers ICMPv4 and ICMPv6)
    src = "192.0.2.0/24"    # CIDR, IPv4 or IPv6 (default: any)
    dst = "10.0.0.5/32"
    dst_port = 22           # a port or "1024-65535" (tcp/udp only)

Allowed packets are forwarded out the port; denied ones are dropped (and counted).
Non-IP frames follow ``default``; malformed IP packets are dropped.  A bad rules file stops
the start with the file, the rule number and the field at fault.

The rules compile into an :class:`nfkit.vector.acl.Acl`, applied a whole burst at a time:
as a JIT kernel when numba is installed, else as a numpy vector stage.  The per-packet
version (``NFKIT_FIREWALL=per-packet``) is the reference the tests compare against;
``NFKIT_FIREWALL=vector`` / ``kernel`` force the other two.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

import nfkit
from nfkit.packets import IpProtocol
from nfkit.vector import HAVE_NUMBA
from nfkit.vector.acl import Acl, AclError, AclRule

PROTOS: dict[str, tuple[int, ...] | None] = {
    "tcp": (IpProtocol.TCP,), "udp": (IpProtocol.UDP,),
    "icmp": (IpProtocol.ICMP, IpProtocol.ICMPV6), "any": None}


class RulesError(nfkit.NfkitError):
    pass


def _ports(v: Any, where: str) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, int) and 0 <= v <= 65535:
        return (v, v)
    if isinstance(v, str) and "-" in v:
        lo, hi = v.split("-", 1)
        if lo.isdigit() and hi.isdigit() and 0 <= int(lo) <= int(hi) <= 65535:
            return (int(lo), int(hi))
    raise RulesError(f"{where}: expected a port 0..65535 or a range like '1024-65535', got {v!r}")


def load_rules(path: Path) -> Acl:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"{path}: {exc}") from None
    unknown_top = set(data) - {"default", "rules"}
    if unknown_top:
        raise RulesError(f"{path}: unknown field(s) {sorted(unknown_top)} (known: default, rules)")
    default = data.get("default", "deny")
    if default not in ("allow", "deny"):
        raise RulesError(f"{path}: default: expected 'allow' or 'deny', got {default!r}")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        raise RulesError(f"{path}: rules: expected an array of tables ([[rules]]), "
                         f"got {type(raw_rules).__name__}")
    rules = []
    for i, r in enumerate(raw_rules):
        where = f"{path}: rules[{i}]"
        unknown = set(r) - {"action", "proto", "src", "dst", "src_port", "dst_port"}
        if unknown:
            raise RulesError(f"{where}: unknown field(s) {sorted(unknown)}")
        if r.get("action") not in ("allow", "deny"):
            raise RulesError(f"{where}.action: expected 'allow' or 'deny', got {r.get('action')!r}")
        proto = r.get("proto", "any")
        if proto not in PROTOS:
            raise RulesError(f"{where}.proto: expected one of {sorted(PROTOS)}, got {proto!r}")
        nets = {}
        for k in ("src", "dst"):
            try:
                nets[k] = ipaddress.ip_network(r[k], strict=False) if k in r else None
            except ValueError as exc:
                raise RulesError(f"{where}.{k}: {exc}") from None
        try:
            rules.append(AclRule(r["action"] == "allow", PROTOS[proto], nets["src"], nets["dst"],
                                 _ports(r.get("src_port"), f"{where}.src_port"),
                                 _ports(r.get("dst_port"), f"{where}.dst_port")))
        except AclError as exc:
            raise RulesError(f"{where}: {exc}") from None
    return Acl(rules, default_allow=default == "allow")


def install(acl: Acl, q: nfkit.PortQueue) -> nfkit.Pipeline:
    """Forward what the ACL allows back out the port; count the rest as dropped."""
    mode = os.environ.get("NFKIT_FIREWALL") or ("kernel" if HAVE_NUMBA else "vector")
    if mode == "per-packet":
        stage: Any = acl.allows_packet
    elif mode == "vector":
        stage = nfkit.vectorized(lambda b: acl.allows(b))
    elif mode == "kernel":
        stage = acl.kernel()
    else:
        raise RulesError(f"NFKIT_FIREWALL: expected per-packet, vector or kernel, got {mode!r}")
    return nfkit.Poll(q).filter(stage).send(q)


def main(runtime: nfkit.Runtime) -> None:
    path = Path(os.environ.get("NFKIT_RULES") or Path(__file__).with_name("rules.toml"))
    acl = load_rules(path)
    runtime.add_pipeline_to_port("eth1", lambda q: install(acl, q))
