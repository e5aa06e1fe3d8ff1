"""The hub's bookkeeping (broadcaster/hub.py), what a subscription wants
(broadcaster/subscription.py) and the camera cache (broadcaster/cameras.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from broadcaster.cameras import CameraDirectory, Place
from broadcaster.events import Event, OutboxRow, build
from broadcaster.hub import Client, EventBuffer, Hub
from broadcaster.subscription import SubscribeMessage, Subscription


def counts(seq: int, camera: str = "c1", region: str = "r1", site: str | None = "s1") -> Event:
    payload = {"batch_id": f"{camera}:1:{seq}", "captured_at": 1.0, "committed_at": 2.0,
               "delta": {}, "totals": {"1:in:person": seq}}
    return build(OutboxRow(seq, "counts", camera, region, payload), site)


def alert(seq: int, site: str | None = "s1", camera: str | None = "c1") -> Event:
    payload = {"alert_id": 1, "rule_id": 1, "rule_name": "busy", "kind": "count_over",
               "state": "firing", "site": site, "camera_id": camera,
               "region": "r1" if camera else None, "subject": camera or "w-1",
               "message": "over", "value": 5, "threshold": 3, "at": 1.0, "fired_at": 1.0}
    return build(OutboxRow(seq, "alerts", camera, None, payload), None)


def sub(site: str = "s1", **message: object) -> Subscription:
    return Subscription.of(SubscribeMessage.model_validate({"op": "subscribe", **message}), site)


def test_events_carry_their_type_and_routing() -> None:
    event = counts(7)
    assert event.text.startswith('{"type": "counts"') and '"event_seq": 7' in event.text
    assert (event.exchange, event.routing_key) == ("results.counts", "r1.c1")
    fleet = alert(8, site=None, camera=None)
    assert fleet.text.startswith('{"type": "alert"') and fleet.site is None
    assert (fleet.exchange, fleet.routing_key) == ("results.alerts", "_fleet._fleet")


@pytest.mark.parametrize(("subscription", "event", "wanted"), [
    (sub(), counts(1), True),  # nothing named: every camera of the site
    (sub(cameras="*"), counts(1, site="s2"), False),  # another site's camera
    (sub(site="*", cameras="*"), counts(1, site="s2"), True),
    (sub(site="*"), counts(1, site=None), True),  # a camera no longer known
    (sub(), counts(1, site=None), False),
    (sub(cameras=["c1"]), counts(1, camera="c2"), False),
    (sub(regions=["r2"]), counts(1), False),  # regions only
    (sub(regions=["r2"]), counts(1, camera="c9", region="r2"), True),
    (sub(regions=["r2"]), counts(1, camera="c9", region="r2", site="s2"), False),
    (sub(cameras=["c2"], regions=["r1"]), counts(1), True),
    (sub(cameras=["c2"]), alert(1), True),  # alerts of the site, whatever the cameras
    (sub(cameras=["c2"], alerts=False), alert(1), False),
    (sub(), alert(1, site="s2"), False),
    (sub(), alert(1, site=None, camera=None), False),  # fleet-wide: every-site tickets only
    (sub(site="*"), alert(1, site=None, camera=None), True),
])
def test_a_subscription_wants(subscription: Subscription, event: Event, wanted: bool) -> None:
    assert subscription.wants(event) is wanted


def test_the_hub_routes_by_subscription_and_drops_slow_clients() -> None:
    hub = Hub()
    everything, only_c1 = Client("s1", 10), Client("s1", 10)
    slow, unsubscribed = Client("s1", 1), Client("s1", 10)
    everything.subscribe(sub())
    only_c1.subscribe(sub(cameras=["c1"]))
    slow.subscribe(sub())
    for client in (everything, only_c1, slow, unsubscribed):
        hub.join(client)
    assert hub.publish([counts(1)]) == []
    assert hub.publish([counts(2, camera="c2")]) == [slow]
    assert slow.dropped.is_set() and slow not in hub.clients
    assert (len(everything.buffer), len(only_c1.buffer), len(unsubscribed.buffer)) == (2, 1, 0)


def test_the_hub_tracks_events_being_relayed() -> None:
    hub = Hub()
    hub.begin([1, 2])
    assert hub.relaying == {1, 2}
    hub.publish([counts(1), counts(2)])
    assert hub.relaying == set()


def test_the_buffer_keeps_order_takes_out_by_seq_and_stays_bounded() -> None:
    buffer = EventBuffer(3)
    assert all(buffer.put(counts(i)) for i in (1, 2, 3))
    assert not buffer.put(counts(4))
    buffer.discard(2)
    assert buffer.put(counts(4)) and buffer.put(counts(4))  # a second copy is not queued
    assert [e.seq for e in iter(buffer.pop, None)] == [1, 3, 4]
    for i in range(10_000):
        buffer.put(counts(i))
        buffer.discard(i)
    assert len(buffer._events) <= 64 + 1


def test_a_new_subscription_forgets_queued_events_it_does_not_want() -> None:
    client = Client("s1", 10)
    client.subscribe(sub())
    for event in (counts(1), counts(2, camera="c2"), alert(3)):
        client.buffer.put(event)
    client.subscribe(sub(cameras=["c2"], alerts=False))
    assert [e.seq for e in iter(client.buffer.pop, None)] == [2]


def directory(places: dict[str, Place], clock: Callable[[], float]) -> CameraDirectory:
    async def load() -> dict[str, Place]:
        return dict(places)

    return CameraDirectory(load, refresh_s=10, miss_refresh_s=1, clock=clock)


async def test_the_camera_cache_rereads_on_age_and_on_a_miss_at_most_so_often() -> None:
    now = [0.0]
    places = {"c1": Place("s1", "r1"), "c2": Place("s2", "r1")}
    cameras = directory(places, lambda: now[0])
    assert await cameras.find("c1", "s1") == Place("s1", "r1") and cameras.loads == 1
    places["c3"] = Place("s1", "r2")
    assert await cameras.find("c3", "s1") is None  # just read: no second read yet
    now[0] = 1.0
    assert await cameras.find("c3", "s1") == Place("s1", "r2") and cameras.loads == 2
    now[0] = 1.5
    assert await cameras.find("c1", "s1") is not None and cameras.loads == 2  # a hit
    now[0] = 12.0
    await cameras.find("c1", "s1")
    assert cameras.loads == 3  # aged out


async def test_another_sites_camera_is_answered_like_an_unknown_one() -> None:
    now = [0.0]
    cameras = directory({"c2": Place("s2", "r1")}, lambda: now[0])
    await cameras.find("c1", "s1")
    now[0] = 5.0
    assert await cameras.find("c2", "s1") is None
    loads_other_site = cameras.loads
    now[0] = 10.0
    assert await cameras.find("nope", "s1") is None
    assert cameras.loads - loads_other_site == 1  # the same re-read as for the other site's
    assert await cameras.find("c2", "*") == Place("s2", "r1")
    assert await cameras.site_of("c2") == "s2" and await cameras.site_of("nope") is None
