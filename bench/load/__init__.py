"""bench/load: how many cameras one machine sustains, and WebSocket fan-out (issue 7)."""
