"""Grouping notifications into messages, as Alertmanager does. Pure: the caller passes `now`.

Each notice (an incident's firing, escalation, repeat or resolution for one channel) joins
a group: its route, its channel, and the values of the route's `group_by` labels (rule,
dimension, key; none: one group for the whole route). A group is flushed as one message
carrying every notice waiting in it:

- a new group waits `group_wait` after its first notice, so a ticker, its topic and the
  market firing at once arrive as one message, not three;
- after a flush, the next one comes no sooner than `group_interval` later, however many
  changes arrive meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from alerts.lifecycle import Kind


def group_labels(group_by: Sequence[str], alert: Mapping[str, str]) -> dict[str, str]:
    """The labels that identify an alert's group: `group_by` picked from the alert."""
    return {label: alert[label] for label in group_by}


def group_key(route: int, channel: str, labels: Mapping[str, str]) -> str:
    """A stable name for one group of one route and channel."""
    raw = "\x1f".join([str(route), channel, *(f"{k}={labels[k]}" for k in sorted(labels))])
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def flush_due_at(
    oldest_waiting: datetime,
    last_flush: datetime | None,
    group_wait: timedelta,
    group_interval: timedelta,
) -> datetime:
    """When a group whose oldest waiting notice was created at `oldest_waiting` flushes."""
    due = oldest_waiting + group_wait
    if last_flush is not None:
        due = max(due, last_flush + group_interval)
    return due


def message_kind(open_states: Sequence[bool]) -> Kind:
    """A message is `firing` while any alert it carries is still open (as Alertmanager's
    group status), else `resolved`; each alert says what happened to it in its own `kind`."""
    return Kind.FIRING if any(open_states) else Kind.RESOLVED
