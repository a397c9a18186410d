"""Test doubles: a packet source and sink over Python lists, for pipelines without ports."""

from __future__ import annotations

from nfkit import Mbuf


class ListRx:
    """Hands out the given packets, ``max_packets`` at a time; records what was asked."""

    def __init__(self, mbufs: list[Mbuf]) -> None:
        self.mbufs = list(mbufs)
        self.asked: list[int] = []

    def receive(self, max_packets: int = 32) -> list[Mbuf]:
        self.asked.append(max_packets)
        out, self.mbufs = self.mbufs[:max_packets], self.mbufs[max_packets:]
        return out


class ListTx:
    """Keeps what it is given (the test frees it); counts transmit calls."""

    def __init__(self) -> None:
        self.sent: list[Mbuf] = []
        self.calls = 0

    def transmit(self, mbufs: list[Mbuf]) -> None:
        self.calls += 1
        self.sent.extend(mbufs)
