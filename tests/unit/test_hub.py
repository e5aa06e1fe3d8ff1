from __future__ import annotations

from broadcaster.hub import ALL, Client, Hub


async def test_hub_routes_by_subscription_and_drops_slow_clients() -> None:
    hub = Hub()
    everything, only_c1, slow, unsubscribed = Client(10, {ALL}), Client(10, {"c1"}), \
        Client(1, {ALL}), Client(10)
    for client in (everything, only_c1, slow, unsubscribed):
        hub.join(client)
    assert hub.publish("c1", {"n": 1}) == []
    assert hub.publish("c2", {"n": 2}) == [slow]
    assert slow.dropped.is_set() and slow not in hub.clients
    assert everything.queue.qsize() == 2
    assert only_c1.queue.qsize() == 1
    assert unsubscribed.queue.qsize() == 0
