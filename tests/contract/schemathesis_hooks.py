"""schemathesis hooks (loaded through schemathesis.toml): how to make a `phone`, a format
JSON Schema cannot spell (whether a number exists is libphonenumber's call)."""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format(
    "phone", st.sampled_from(["+14155550123", "+44 20 7946 0018", "+49 30 901820", ""])
)
