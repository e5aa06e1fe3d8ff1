"""Masking of credentials: what may appear in logs, API responses and messages."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def mask_url(url: str) -> str:
    """Replace the password of a URL's userinfo (and nothing else) with a mask. A user name
    alone is masked whole: cameras and webhooks put tokens there (`rtsp://TOKEN@host/`)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    if parts.password is None and not parts.username:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = MASK if parts.password is None else f"{parts.username or ''}:{MASK}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}{port}"))


# Greedy up to the last "@" before the path: an unencoded "@" inside a password stays masked.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@")
_AUTH_HEADER = re.compile(r"(?im)^(?P<name>(?:proxy-)?authorization:)[^\r\n]*")


def mask_credentials(text: str) -> str:
    """Mask all userinfo (`user:pass@`) of URLs and Authorization header values in free text:
    for log lines and error messages, where a URL's structure cannot be trusted."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _AUTH_HEADER.sub(r"\g<name> ***", text)


# --- known secrets, in whatever encoding they turn up ----------------------------------------
#
# Userinfo and Authorization headers are masked by shape above. A password that is known can
# also be found where no shape gives it away: percent-encoded in a URL a server echoes (any
# mix of escaped and plain characters, either hex case, '+' for a space), escaped in JSON or
# HTML, or base64-encoded as in `Basic b64(user:pass)`, also inside a longer base64 text.

_HTML_ENTITIES = {"&": ("&amp;",), "<": ("&lt;",), ">": ("&gt;",), '"': ("&quot;",),
                  "'": ("&apos;",)}
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                 "\r": "\\r", "\t": "\\t"}
# Shorter cores of base64 text inside a longer one would match unrelated text too often.
_MIN_BASE64_CORE = 6


def _any_case(text: str) -> str:
    """A pattern for `text` with its letters in either case (hex digits, entity names)."""
    return "".join(f"[{ch.upper()}{ch.lower()}]" if ch.isalpha() else re.escape(ch)
                   for ch in text)


def _char_pattern(ch: str) -> str:
    forms = [re.escape(ch), "".join(_any_case(f"%{byte:02x}") for byte in ch.encode())]
    if ch == " ":
        forms.append(r"\+")
    if ch in _JSON_ESCAPES:
        forms.append(re.escape(_JSON_ESCAPES[ch]))
    forms.extend(re.escape(entity) for entity in _HTML_ENTITIES.get(ch, ()))
    code = ord(ch)
    utf16 = ch.encode("utf-16-be")  # beyond the BMP: JSON writes the surrogate pair
    forms.append("".join(_any_case(f"\\u{int.from_bytes(utf16[i:i + 2]):04x}")
                         for i in range(0, len(utf16), 2)))
    forms.append(f"&#0*{code};")
    forms.append(f"&#[xX]0*{_any_case(f'{code:x}')};")
    return f"(?:{'|'.join(forms)})"


def _base64_forms(secret: str) -> set[str]:
    """The base64 texts of `secret` (standard and URL-safe, padded or not), and the parts of
    any longer base64 text that holds it, at each of the three byte alignments."""
    data = secret.encode()
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode()
        forms.update((whole, whole.rstrip("=")))
        for lead in range(3):
            text = encode(b"\0" * lead + data).decode().rstrip("=")
            # Characters touched by the lead bytes or by whatever follows are not fixed.
            start = -(-lead * 4 // 3)
            end = (lead + len(data)) * 4 // 3
            core = text[start:end]
            if len(core) >= _MIN_BASE64_CORE:
                forms.add(core)
    return forms


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a URL's userinfo carries, decoded: its password and `user:password` (the
    Basic credentials), or a user name that stands alone (a token)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    user = unquote(parts.username or "")
    if parts.password is None:
        return (user,) if user else ()
    password = unquote(parts.password)
    return tuple(s for s in (f"{user}:{password}", password) if s)


class SecretMasker:
    """Masks known secrets in text: raw, percent-encoded, JSON- or HTML-escaped, base64."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        fresh = {s for s in secrets if s} - self._secrets
        if not fresh:
            return
        self._secrets |= fresh
        patterns = {"".join(_char_pattern(ch) for ch in s) for s in self._secrets}
        patterns |= {re.escape(form) for s in self._secrets for form in _base64_forms(s)}
        # Longest first: `user:pass` must be masked whole before `pass` inside it.
        self._pattern = re.compile("|".join(sorted(patterns, key=len, reverse=True)))

    def mask(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)


def mask_known(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` masked, in every encoding SecretMasker knows."""
    return SecretMasker(secrets).mask(text)
