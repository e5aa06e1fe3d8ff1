"""Message faults for the fault suite (brief F2): damaged batch bodies and headers, a batch
whose transaction always fails, and what a test that is itself the producer needs to judge the
outcome: the dead-letter queue's contents and the simulator's truth over covered time."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.batch import EncodedFrame, decode_batch, encode_batch
from contracts.messages import BatchHeaders
from simulator.scenes import SyntheticScene
from tests.faults.checker import CLOCK_SLACK_S, GAP_MARGIN_S, History
from tests.faults.history import applied, confirmed_batch, counted, gaps, scene_truth

_HEAD = struct.Struct(">4sI")


def flip_jpeg_start(body: bytes, frame_index: int) -> bytes:
    """One frame's JPEG with its start-of-image marker flipped: undecodable, the rest intact."""
    frames = decode_batch(body)
    victim = frames[frame_index]
    spoiled = bytes(b ^ 0xFF for b in victim.jpeg[:4]) + victim.jpeg[4:]
    frames[frame_index] = EncodedFrame(victim.captured_at, victim.width, victim.height, spoiled)
    return encode_batch(frames)


def flip_magic(body: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in body[:4]) + body[4:]


def flip_metadata(body: bytes) -> bytes:
    """A bit flipped inside the container's JSON metadata (its first key)."""
    _, meta_len = _HEAD.unpack_from(body)
    meta = bytearray(body[_HEAD.size : _HEAD.size + meta_len])
    at = meta.index(b"frames")
    meta[at] ^= 0x01  # "frames" -> "grames"
    return body[: _HEAD.size] + bytes(meta) + body[_HEAD.size + meta_len :]


def truncate(body: bytes, cut: int = 100) -> bytes:
    return body[:-cut]


async def publish_raw(channel: AbstractChannel, queue: str, body: bytes,
                      headers: dict[str, Any], message_id: str) -> None:
    """Published with the channel's confirms: returns once the broker holds it."""
    await channel.default_exchange.publish(
        aio_pika.Message(body, headers=headers, message_id=message_id,
                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=queue,
    )


async def dead_letters(channel: AbstractChannel) -> dict[str, str]:
    """Everything parked in the DLQ now, taken: message id -> the reason it carries."""
    queue = await channel.declare_queue(broker.FRAMES_DEAD, passive=True)
    out: dict[str, str] = {}
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        out[message.message_id or ""] = str((message.headers or {}).get(broker.HEADER_ERROR))
    return out


async def fail_progress_at(engine: AsyncEngine, camera_id: str, seq: int) -> None:
    """Every transaction that would move `camera_id`'s progress to `seq` fails, for ever: a
    poison batch for any worker, from a trigger inside the real database."""
    async with engine.begin() as conn:
        await conn.execute(text("""
            CREATE FUNCTION f2_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'f2 poison: batch % of % always fails',
                                   NEW.last_seq, NEW.camera_id; END $$"""))
        await conn.execute(text(f"""
            CREATE TRIGGER f2_poison BEFORE INSERT OR UPDATE ON camera_progress
            FOR EACH ROW WHEN (NEW.camera_id = '{camera_id}' AND NEW.last_seq = {int(seq)})
            EXECUTE FUNCTION f2_poison()"""))


async def producer_history(engine: AsyncEngine, published: Iterable[BatchHeaders],
                           scenes: Mapping[str, SyntheticScene]) -> History:
    """The checker's history for a test that published each camera's scene itself, every frame
    from scene time 0 (tests.support.scene_batches): `published` are the batches the broker
    confirmed. The windows reach past the first and last frame by the checker's edge margin,
    since no session edge hides a crossing here: each scene was sent whole."""
    sent = list(published)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for h in sent:
        first[h.camera_id] = min(first.get(h.camera_id, h.captured_at), h.captured_at)
        ends_at = confirmed_batch(h).ends_at
        last[h.camera_id] = max(last.get(h.camera_id, ends_at), ends_at)
    edge_s = GAP_MARGIN_S + CLOCK_SLACK_S
    return History(
        confirmed=[confirmed_batch(h) for h in sent], applied=await applied(engine),
        gaps=await gaps(engine), counted=await counted(engine),
        truth=[c for cam, scene in scenes.items() for c in scene_truth(scene, cam, first[cam])],
        windows={cam: [(first[cam] - edge_s, last[cam] + edge_s)] for cam in scenes},
    )
