"""Alerts: rules evaluated by one registry at a time, alert state in PostgreSQL, every change
of state an outbox event (relayed live) and optionally a webhook.

- rules.py: the pure state machine (hysteresis, for_s, clear_for_s, cooldown, no data);
- params.py: each kind's params and what its value means;
- measures.py, queues.py: what the rules judge (PostgreSQL, RabbitMQ's management API);
- rule_store.py, alert_store.py, events.py: rules and alerts in PostgreSQL, with outbox rows;
- evaluator.py: the loop under an advisory lock; webhook.py: delivery after the commit;
- api_models.py: the API's models and checks (routes in registry/alerts_api.py).
"""
