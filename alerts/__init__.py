"""Negative-sentiment spike alerts: detect, judge in event time, group, store, deliver.

A notification goes through small stages, after Prometheus Alertmanager's notify pipeline:

    rules.py       the validated `[alerts]` config: rules, channels, routes, timing, retries
    watermark.py   pure: event-time progress per input partition (the watermark)
    pacing.py      pure: which windows to judge when (closed, settled, paced)
    detection.py   pure: one trend window against its baseline -> an assessment
    lifecycle.py   pure: incidents per episode in event time, each decision with a reason
    grouping.py    pure: which notices travel together, and when a group is flushed
    outbox.py      SQL: incidents, their notices and the messages, written before sending
    delivery.py    one retry policy for all channels; send, then mark sent once accepted
    channels/      log (offline default), email (SMTP), webhook (signed HTTP POST)
    payload.py     the message document (`finmon.alert-group/v2`)
    service.py     the facade the worker and replay call
    cli.py         `finmon alerts`

docs/alerts.md describes the design, the message schema and the measured quality.
"""
