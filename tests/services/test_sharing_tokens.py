"""Share-link tokens without a database: base64url(nonce || HMAC(secret, nonce)[:16]),
128 random bits behind each, bound to SECRET_KEY, and nothing but a well-formed, authentic
token is accepted."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta

import pytest

from db.models import ServiceOrder, ShareLink
from services import sharing

SECRET = "t" * 48
OTHER_SECRET = "u" * 48


def link_with(nonce: bytes) -> ShareLink:
    return ShareLink(nonce=nonce.hex())


def decode(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_token_round_trip() -> None:
    nonce = secrets.token_bytes(16)
    token = sharing.token_for(link_with(nonce), SECRET)
    assert len(token) == 43 and "=" not in token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = decode(token)
    assert raw[:16] == nonce and len(raw) == 32
    assert sharing._parse(token, SECRET) == nonce.hex()
    # the same link always gives the same token (the shop can show it again)
    assert sharing.token_for(link_with(nonce), SECRET) == token
    assert sharing.url_for(link_with(nonce), SECRET, "https://shop.example/") == (
        f"https://shop.example/t/{token}"
    )


def test_a_token_made_with_another_secret_is_refused() -> None:
    link = link_with(secrets.token_bytes(16))
    theirs = sharing.token_for(link, OTHER_SECRET)
    assert theirs != sharing.token_for(link, SECRET)
    assert sharing._parse(theirs, SECRET) is None
    assert sharing._parse(theirs, OTHER_SECRET) == link.nonce


def test_every_forged_byte_is_refused() -> None:
    nonce = secrets.token_bytes(16)
    raw = decode(sharing.token_for(link_with(nonce), SECRET))
    for i in range(len(raw)):
        for bit in (0x01, 0x80):
            forged = bytearray(raw)
            forged[i] ^= bit
            assert sharing._parse(encode(bytes(forged)), SECRET) is None, (i, bit)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "!!!!",
        "A" * 43,
        "A" * 65,
        "A" * 200,
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    assert sharing._parse(token, SECRET) is None


def test_wrong_lengths_are_refused() -> None:
    nonce = secrets.token_bytes(16)
    token = sharing.token_for(link_with(nonce), SECRET)
    raw = decode(token)
    for bad in (raw[:-1], raw + b"\x00", raw[:16], raw[16:], nonce + raw):
        assert sharing._parse(encode(bad), SECRET) is None
    assert sharing._parse(token[:-1], SECRET) is None


def test_each_link_gets_16_fresh_random_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    real = secrets.token_bytes

    def spy(n: int) -> bytes:
        asked.append(n)
        return real(n)

    monkeypatch.setattr(sharing.secrets, "token_bytes", spy)
    order = ServiceOrder(id=1, account_id=1)
    links = [sharing._new_link(order, {sharing.Permission.VIEW}, 7, None) for _ in range(2000)]
    assert asked == [16] * 2000  # from the OS CSPRNG: 128 bits per link
    nonces = {link.nonce for link in links}
    assert len(nonces) == 2000 and all(len(n) == 32 for n in nonces)
    # no byte position is constant across links (a counter or clock would show)
    raws = [bytes.fromhex(n) for n in nonces]
    assert all(len({r[i] for r in raws}) > 100 for i in range(16))
    tokens = {sharing.token_for(link, SECRET) for link in links}
    assert len(tokens) == 2000
    link = links[0]
    assert link.expires_at - link.created_at == timedelta(days=7)
    assert isinstance(link.created_at, datetime) and link.created_at.tzinfo is not None
