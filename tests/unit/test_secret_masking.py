"""Known secrets are masked in every encoding they turn up in (contracts/secrets.py): raw,
percent-encoded (quote, quote_plus, either hex case), JSON and HTML escaped, base64 alone,
as Basic credentials, and inside a longer base64 text."""

from __future__ import annotations

import base64
import binascii
import html
import json
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.secrets import MASK, SecretMasker, mask_known, url_secrets

SPECIALS = "@:/%#?&=+ \"'\\<>[]!$*;,~é€😀\t"
passwords = st.text(
    alphabet=st.one_of(st.sampled_from(SPECIALS), st.characters(codec="utf-8",
                                                                 exclude_categories=["Cs"])),
    min_size=1, max_size=24)
users = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)
surroundings = st.text(alphabet="abc XYZ<>=:;,.-_/\"{}[]\n", max_size=20)

Encoding = Callable[[str, str], str]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


ENCODINGS: dict[str, Encoding] = {
    "raw": lambda user, pw: pw,
    "quote": lambda user, pw: quote(pw),
    "quote safe=''": lambda user, pw: quote(pw, safe=""),
    "quote_plus": lambda user, pw: quote_plus(pw),
    "userinfo": lambda user, pw: f"rtsp://{quote(user)}:{quote(pw, safe='')}@cam.lan/x",
    "json": lambda user, pw: json.dumps(pw),  # non-ASCII as \uXXXX escapes
    "json no ascii": lambda user, pw: json.dumps(pw, ensure_ascii=False),
    "json of a url": lambda user, pw: json.dumps({"url": f"http://{user}:{quote(pw)}@h/"}),
    "html": lambda user, pw: html.escape(pw),
    "base64 password": lambda user, pw: _b64(pw),
    "base64 unpadded": lambda user, pw: _b64(pw).rstrip("="),
    "base64 url-safe": lambda user, pw: base64.urlsafe_b64encode(pw.encode()).decode(),
    "basic header": lambda user, pw: f"Authorization: Basic {_b64(f'{user}:{pw}')}",
    "basic token": lambda user, pw: _b64(f"{user}:{pw}"),
}


def _lowercase_hex(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "%":
            out.append(text[i:i + 3].lower())
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


ENCODINGS["quote lower hex"] = lambda user, pw: _lowercase_hex(quote(pw, safe=""))
ENCODINGS["quote_plus lower hex"] = lambda user, pw: _lowercase_hex(quote_plus(pw))


@pytest.mark.parametrize("name", sorted(ENCODINGS))
@given(user=users, password=passwords, before=surroundings, after=surroundings)
def test_a_known_password_is_masked_in_every_encoding(
    name: str, user: str, password: str, before: str, after: str,
) -> None:
    encoded = ENCODINGS[name](user, password)
    url = f"rtsp://{quote(user)}:{quote(password, safe='')}@cam.lan/x"
    masked = SecretMasker(url_secrets(url)).mask(before + encoded + after)
    assert MASK in masked
    assert encoded not in masked
    if len(password) >= 3:  # a shorter one may well stand in the text around it by chance
        assert password not in masked.replace(before, "", 1)


def _base64_fragments_hold(fragment: str, data: bytes) -> bool:
    """Whether `fragment`, a piece of a base64 text at any alignment, decodes to bytes that
    hold `data`."""
    for start in range(4):
        piece = fragment[start:]
        piece = piece[: len(piece) - len(piece) % 4]
        try:
            if data in base64.b64decode(piece, validate=True):
                return True
        except (binascii.Error, ValueError):
            continue
    return False


@given(password=passwords.filter(lambda p: len(p.encode()) >= 8),
       prefix=st.binary(max_size=10), suffix=st.binary(max_size=10))
def test_a_password_inside_a_longer_base64_text_is_masked(
    password: str, prefix: bytes, suffix: bytes,
) -> None:
    text = base64.b64encode(prefix + password.encode() + suffix).decode()
    masked = mask_known(text, [password])
    assert MASK in masked
    assert not any(_base64_fragments_hold(part, password.encode())
                   for part in masked.split(MASK))


def test_the_basic_credentials_and_the_password_are_the_secrets_of_a_url() -> None:
    assert url_secrets("rtsp://admin:p%40ss%3Aword@cam/x") == ("admin:p@ss:word", "p@ss:word")
    assert url_secrets("https://t0k3n@cam/x") == ("t0k3n",)  # a token as the user name
    assert url_secrets("rtsp://cam/x") == ()
    assert url_secrets("rtsp://[::1/x") == ()


def test_text_without_the_secrets_is_left_alone() -> None:
    text = 'GET rtsp://cam.lan/x RTSP/1.0 {"status": "live", "fps": 5}'
    assert mask_known(text, ["correct horse battery", "Tr0ub4dor&3"]) == text
    assert mask_known(text, []) == text
    assert mask_known(text, [""]) == text


def test_the_user_name_beside_the_password_is_masked_with_it() -> None:
    masker = SecretMasker(url_secrets("rtsp://admin:pa55word@cam/x"))
    assert masker.mask("creds admin:pa55word here") == f"creds {MASK} here"
    assert masker.mask("only pa55word") == f"only {MASK}"
    masker.add("s3cond")
    assert masker.mask("pa55word and s3cond") == f"{MASK} and {MASK}"
