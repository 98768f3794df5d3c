"""Retell's signature, verified on raw bytes against retell-sdk's own signer."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from retell.lib.webhook_auth import symmetric

from rezeption.retell.signature import TOLERANCE_MS, sign, verify

KEY = "key_test_0123456789abcdef"
NOW = 1_762_300_000_000


def sdk_sign(body: bytes, at: int = NOW, key: str = KEY) -> str:
    return str(symmetric["sign"](body.decode("utf-8"), key, at))


UMLAUTS = json.dumps(
    {"args": {"name": "Jürgen Weiß", "dienstleistung": "Färben", "datum": "übermorgen"}}, ensure_ascii=False
)


@pytest.mark.parametrize("body", [b"", b"{}", UMLAUTS.encode("utf-8"), "Straße ß €".encode()])
def test_bodies_signed_by_the_sdk_verify(body: bytes) -> None:
    assert verify(body, KEY, sdk_sign(body), NOW)
    assert sign(body, KEY, NOW) == sdk_sign(body)


def test_the_same_json_serialized_differently_does_not_verify() -> None:
    raw = UMLAUTS.encode("utf-8")
    reserialized = json.dumps(json.loads(raw)).encode()  # ensure_ascii=True escapes the umlauts
    assert not verify(reserialized, KEY, sdk_sign(raw), NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "v=123",
        f"v={NOW},d=" + "0" * 64,
        f"v={NOW},d=" + "g" * 64,
        f"d=00,v={NOW}",
        f" v={NOW},d={'a' * 63}",
    ],
)
def test_missing_malformed_and_forged_headers_are_refused(header: str | None) -> None:
    assert not verify(b"{}", KEY, header, NOW)


def test_stale_and_future_signatures_outside_five_minutes_are_refused() -> None:
    body = b'{"event":"call_ended"}'
    assert verify(body, KEY, sdk_sign(body, NOW - TOLERANCE_MS), NOW)
    assert not verify(body, KEY, sdk_sign(body, NOW - TOLERANCE_MS - 1), NOW)
    assert not verify(body, KEY, sdk_sign(body, NOW + TOLERANCE_MS + 1), NOW)


def test_another_key_does_not_verify() -> None:
    assert not verify(b"{}", KEY, sdk_sign(b"{}", key="key_other_0123456789abcdef"), NOW)
    assert not verify(b"{}", "", sdk_sign(b"{}"), NOW)


@given(
    st.binary(max_size=300).filter(
        lambda b: b.decode("utf-8", errors="strict") is not None if _utf8(b) else False
    )
)
def test_any_utf8_body_round_trips_and_any_changed_byte_fails(body: bytes) -> None:
    header = sdk_sign(body)
    assert verify(body, KEY, header, NOW)
    assert not verify(body + b" ", KEY, header, NOW)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
