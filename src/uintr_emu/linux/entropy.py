"""The guest's random bytes (getrandom, AT_RANDOM): splitmix64 seeded by --seed, so that runs
are reproducible; the host's with --realtime."""

from __future__ import annotations

import os
import struct

_M64 = (1 << 64) - 1


class Entropy:
    def __init__(self, seed: int, host: bool) -> None:
        self.host = host
        self.state = (seed * 0x9E3779B97F4A7C15 + 0x1234567) & _M64

    def bytes(self, n: int) -> bytes:
        if self.host:
            return os.urandom(n)
        out = bytearray()
        while len(out) < n:
            self.state = (self.state + 0x9E3779B97F4A7C15) & _M64
            z = self.state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
            out += struct.pack("<Q", z ^ (z >> 31))
        return bytes(out[:n])
