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
Non-IP frames follow ``default``.  A bad rules file stops the start with the file, the rule
number and the field at fault.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nfkit
from nfkit.packets import EtherType, Ethernet, IpProtocol, Ipv4, Ipv6, Tcp, Udp

PROTOS = {"tcp": {IpProtocol.TCP}, "udp": {IpProtocol.UDP},
          "icmp": {IpProtocol.ICMP, IpProtocol.ICMPV6}, "any": None}


class RulesError(nfkit.NfkitError):
    pass


@dataclass(frozen=True)
class Rule:
    allow: bool
    protos: frozenset[int] | None
    src: Any
    dst: Any
    src_ports: range | None
    dst_ports: range | None

    def matches(self, proto: int, src: Any, dst: Any, sport: int | None, dport: int | None) -> bool:
        if self.protos is not None and proto not in self.protos:
            return False
        if self.src is not None and (src.version != self.src.version or src not in self.src):
            return False
        if self.dst is not None and (dst.version != self.dst.version or dst not in self.dst):
            return False
        if self.src_ports is not None and (sport is None or sport not in self.src_ports):
            return False
        if self.dst_ports is not None and (dport is None or dport not in self.dst_ports):
            return False
        return True


def _ports(v: Any, where: str) -> range | None:
    if v is None:
        return None
    if isinstance(v, int) and 0 <= v <= 65535:
        return range(v, v + 1)
    if isinstance(v, str) and "-" in v:
        lo, hi = v.split("-", 1)
        if lo.isdigit() and hi.isdigit() and 0 <= int(lo) <= int(hi) <= 65535:
            return range(int(lo), int(hi) + 1)
    raise RulesError(f"{where}: expected a port 0..65535 or a range like '1024-65535', got {v!r}")


def load_rules(path: Path) -> tuple[list[Rule], bool]:
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
        rules.append(Rule(r["action"] == "allow",
                          frozenset(PROTOS[proto]) if PROTOS[proto] else None, nets["src"],
                          nets["dst"], _ports(r.get("src_port"), f"{where}.src_port"),
                          _ports(r.get("dst_port"), f"{where}.dst_port")))
    return rules, default == "allow"


class Firewall:
    def __init__(self, rules: list[Rule], default_allow: bool) -> None:
        self.rules = rules
        self.default_allow = default_allow

    def allows(self, m: nfkit.Mbuf) -> bool:
        eth = m.peek(Ethernet)
        et = eth.ether_type
        if et == EtherType.IPV4:
            ip: Any = eth.peek(Ipv4)
            proto = ip.protocol if not ip.is_fragment or ip.fragment_offset == 0 else -1
        elif et == EtherType.IPV6:
            ip = eth.peek(Ipv6)
            proto = ip.next_header
        else:
            return self.default_allow
        sport = dport = None
        if proto in (IpProtocol.TCP, IpProtocol.UDP):
            l4 = ip.peek(Tcp if proto == IpProtocol.TCP else Udp)
            sport, dport = l4.src_port, l4.dst_port
        src, dst = ip.src, ip.dst
        for rule in self.rules:
            if rule.matches(proto, src, dst, sport, dport):
                return rule.allow
        return self.default_allow


def main(runtime: nfkit.Runtime) -> None:
    path = Path(os.environ.get("NFKIT_RULES") or Path(__file__).with_name("rules.toml"))
    fw = Firewall(*load_rules(path))
    runtime.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).filter(fw.allows).send(q))
