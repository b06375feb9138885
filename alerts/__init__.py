"""Negative-sentiment spike alerts: detect, deduplicate, store, deliver.

A notification goes through small stages, after Prometheus Alertmanager's notify pipeline:

    rules.py       the validated `[alerts]` config: rules, channels, routes, retry policy
    detection.py   pure: one trend window against its baseline -> an assessment
    lifecycle.py   pure: firing / resolved state machine and dedup, each decision with a reason
    outbox.py      SQL: alerts and their pending deliveries, written before anything is sent
    delivery.py    one retry policy for all channels; send, then mark sent once accepted
    channels/      log (offline default), email (SMTP), webhook (signed HTTP POST)
    service.py     the facade the worker and replay call
    cli.py         `finmon alerts`
"""
