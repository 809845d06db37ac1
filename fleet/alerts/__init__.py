"""Alerts: conditions read from the workers' current state (conditions.py), the pass that opens
and resolves alerts from the change log and fills the outbox (evaluate.py), and the delivery of
the outbox through Apprise (delivery.py)."""
