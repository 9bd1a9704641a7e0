"""Time-ordered UUIDs (RFC 9562 version 7): new rows land at the end of their indexes."""

from __future__ import annotations

import os
import time
from uuid import UUID


def new_id() -> UUID:
    millis = time.time_ns() // 1_000_000
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value &= ~(0xF << 76)
    value |= 0x7 << 76  # version 7
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # RFC 9562 variant
    return UUID(int=value)
