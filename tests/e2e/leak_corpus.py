"""Everything a person or another system can see of a running camcount, gathered as text to
search for a secret: API answers, broker messages, WebSocket messages, webhook bodies, pages,
log files and every row of every table; and the forms a password takes when it leaks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.secrets import SecretMasker
from infra import amqp

# --- the forms a secret takes -------------------------------------------------------------------


def secret_forms(user: str, password: str) -> dict[str, str]:
    """label -> one form of the password: raw, percent-encoded (as `quote` with and without
    '/' safe, and `quote_plus` write it), and base64 of `user:password` (the Basic
    credentials) and of the password alone, standard and URL-safe, with and without padding."""
    forms = {"raw": password, "quote(safe='')": quote(password, safe=""),
             "quote": quote(password), "quote_plus": quote_plus(password)}
    for label, secret in (("user:password", f"{user}:{password}"), ("password", password)):
        for name, encode in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
            encoded = encode(secret.encode()).decode()
            forms[f"{name}({label})"] = encoded
            forms[f"{name}({label}) unpadded"] = encoded.rstrip("=")
    return forms


@dataclass
class Secret:
    """One camera's credentials and the ways to find them in text."""

    user: str
    password: str
    forms: dict[str, str] = field(init=False)
    # Mixed and either-case escapes, JSON and HTML escapes, base64 inside longer base64.
    masker: SecretMasker = field(init=False)

    def __post_init__(self) -> None:
        self.forms = secret_forms(self.user, self.password)
        self.masker = SecretMasker([self.password, f"{self.user}:{self.password}"])

    def found_in(self, text: str) -> list[str]:
        found = [label for label, form in self.forms.items() if form in text]
        if not found and self.masker.mask(text) != text:
            found.append("an escaped or embedded form (SecretMasker)")
        return found


# --- the corpus ---------------------------------------------------------------------------------


@dataclass
class Corpus:
    """Texts by where they were seen ("GET /api/cameras", "log ingest.log", ...)."""

    texts: dict[str, str] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)

    def add(self, source: str, content: str | bytes) -> None:
        if isinstance(content, bytes):
            content = content.decode("utf-8", errors="replace")
        n = self._seen[source] = self._seen.get(source, 0) + 1
        self.texts[source if n == 1 else f"{source} #{n}"] = content

    def of(self, kind: str) -> dict[str, str]:
        """The texts whose source starts with `kind` ("log", "amqp", "GET", ...)."""
        return {k: v for k, v in self.texts.items() if k.startswith(kind)}

    @property
    def chars(self) -> int:
        return sum(len(t) for t in self.texts.values())

    def leaks(self, secrets: Mapping[str, Secret]) -> dict[str, list[str]]:
        """source -> "camera: form" for every secret found there."""
        found: dict[str, list[str]] = {}
        for source, content in self.texts.items():
            for camera, secret in secrets.items():
                for form in secret.found_in(content):
                    found.setdefault(source, []).append(f"{camera}: {form}")
        return found


# --- broker messages ----------------------------------------------------------------------------

TAPPED = (broker.REGISTRY_EVENTS, broker.RESULTS_COUNTS, broker.RESULTS_ALERTS,
          broker.HEARTBEATS)


@contextlib.asynccontextmanager
async def broker_tap(url: str, corpus: Corpus) -> AsyncIterator[list[str]]:
    """A queue of our own on each tapped exchange, bound before any role publishes; every
    message (routing key, headers, body) goes into the corpus. Yields the exchanges whose
    messages arrived, one entry per message."""
    seen: list[str] = []
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for spec in broker.EXCHANGES:
            if spec.name not in TAPPED:
                continue
            exchange = await amqp.declare_exchange(channel, spec)
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(exchange, routing_key="" if spec.type == "fanout" else "#")

            def collect(message: AbstractIncomingMessage, name: str = spec.name) -> None:
                seen.append(name)
                headers = json.dumps(message.headers, default=str)
                corpus.add(f"amqp {name} {message.routing_key}",
                           f"{message.message_id}\n{headers}\n"
                           f"{message.body.decode('utf-8', errors='replace')}")

            async def on_message(message: AbstractIncomingMessage,
                                 collect: Callable[[AbstractIncomingMessage], None] = collect,
                                 ) -> None:
                collect(message)
                await message.ack()

            await queue.consume(on_message)
        yield seen
    finally:
        await connection.close()


# --- the database -------------------------------------------------------------------------------


async def table_rows(engine: AsyncEngine, corpus: Corpus,
                     left_out: Mapping[str, str]) -> dict[str, int]:
    """Every row of every table in the public schema as JSON (all columns, bytea as hex),
    without the columns `left_out` names (table -> column); rows per table."""
    counts: dict[str, int] = {}
    async with engine.connect() as conn:
        tables = (await conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"))).scalars()
        for table in list(tables):
            assert re.fullmatch(r"[a-z_][a-z0-9_]*", table), table
            row = "to_jsonb(t)"
            if table in left_out:
                row = f"(to_jsonb(t) - '{left_out[table]}')"
            rows = (await conn.execute(text(f'SELECT {row}::text FROM "{table}" t'))).scalars()
            found = list(rows)
            counts[table] = len(found)
            corpus.add(f"table {table}", "\n".join(found))
    return counts


# --- the API ------------------------------------------------------------------------------------


async def every_get(http: httpx.AsyncClient, corpus: Corpus,
                    values: Mapping[str, Iterable[str]],
                    query: Mapping[str, Mapping[str, str]]) -> list[str]:
    """GET every route /openapi.json lists, once for each value of its path parameters
    (`values`: name -> values), with the query parameters `query` gives for its path (those
    it requires, at least); the answers go into the corpus. Returns the routes left out
    (a path parameter without values)."""
    schema = (await http.get("/openapi.json")).json()
    corpus.add("GET /openapi.json", json.dumps(schema))
    left_out = []
    for path, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        names = re.findall(r"{(\w+)}", path)
        if any(not list(values.get(name, ())) for name in names):
            left_out.append(path)
            continue
        for concrete in _fill(path, names, values):
            answer = await http.get(concrete, params=dict(query.get(path, {})))
            assert answer.status_code < 500, (concrete, answer.status_code, answer.text)
            kind = answer.headers.get("content-type", "")
            corpus.add(f"GET {concrete}", f"{answer.status_code} {kind}\n{answer.headers}\n"
                       + ("(image)" if kind.startswith("image/") else answer.text))
    return left_out


def _fill(path: str, names: list[str], values: Mapping[str, Iterable[str]]) -> list[str]:
    paths = [path]
    for name in names:
        paths = [p.replace(f"{{{name}}}", quote(v, safe="")) for p in paths
                 for v in values[name]]
    return paths


# --- WebSocket ----------------------------------------------------------------------------------


async def websocket_messages(http: httpx.AsyncClient, corpus: Corpus, subscribe: dict[str, Any],
                             until: asyncio.Event, label: str) -> int:
    """Open the live WebSocket with a ticket, send `subscribe`, and put every message into
    the corpus until `until` is set; how many arrived."""
    from websockets.asyncio.client import connect

    issued = await http.post("/api/ws-ticket")
    assert issued.status_code == 200, issued.text
    ticket = issued.json()
    corpus.add("POST /api/ws-ticket", issued.text)
    received = 0
    async with connect(f"{ticket['websocket_url']}?ticket={ticket['ticket']}") as ws:
        await ws.send(json.dumps(subscribe))
        while not until.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            received += 1
            corpus.add(f"ws {label}", message if isinstance(message, str) else message.decode())
    return received
