"""Masking of credentials in URLs: what may appear in logs, API responses and messages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def mask_url(url: str) -> str:
    """Replace the password of a URL's userinfo (and nothing else) with a mask."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}{port}"))


# Greedy up to the last "@" before the path: an unencoded "@" inside a password stays masked.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@")
_AUTH_HEADER = re.compile(r"(?im)^(?P<name>(?:proxy-)?authorization:)[^\r\n]*")


def mask_credentials(text: str) -> str:
    """Mask all userinfo (`user:pass@`) of URLs and Authorization header values in free text:
    for log lines and error messages, where a URL's structure cannot be trusted."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _AUTH_HEADER.sub(r"\g<name> ***", text)
