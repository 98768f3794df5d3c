"""Retell's request signature: `X-Retell-Signature: v=<unix ms>,d=<hex HMAC-SHA256>`.

d = HMAC-SHA256(key = the Retell API key, message = raw body bytes + str(v)), compared in constant
time, accepted within five minutes either way. Always over the raw bytes as received: re-serialized
JSON breaks on umlauts and ß. Our own ten lines instead of the SDK, so a SDK release cannot take
verification away (it did once, retell-python-sdk#394); the tests sign with the SDK's own `sign`.
"""

from __future__ import annotations

import hashlib
import hmac
import re

TOLERANCE_MS = 5 * 60 * 1000
_HEADER = re.compile(r"v=(\d{1,16}),d=([0-9a-f]{64})")


def sign(body: bytes, api_key: str, timestamp_ms: int) -> str:
    """The header value Retell would send for `body` at `timestamp_ms`."""
    digest = hmac.new(api_key.encode(), body + str(timestamp_ms).encode(), hashlib.sha256).hexdigest()
    return f"v={timestamp_ms},d={digest}"


def verify(body: bytes, api_key: str, header: str | None, now_ms: int) -> bool:
    """Whether `header` is a fresh, valid signature of `body` under `api_key`."""
    if not header or not api_key:
        return False
    match = _HEADER.fullmatch(header.strip())
    if match is None:
        return False
    timestamp = int(match.group(1))
    if abs(now_ms - timestamp) > TOLERANCE_MS:
        return False
    expected = hmac.new(api_key.encode(), body + match.group(1).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match.group(2))
