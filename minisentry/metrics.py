"""Pipeline metrics in Prometheus' text format, and the readiness verdict built from them.

``GET /metrics`` serves :func:`render`; ``minisentry status`` reads it back with :func:`parse`.
Readiness is about the pipeline, not the host: the pipeline is unready while it starts or drains,
when the first channel is full (the relay is answering 429), or when any channel's oldest message
has waited longer than ``stages.stale_after`` seconds (a stage is stuck).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from .channels import ChannelStats

__all__ = ["Health", "render", "parse", "health_of"]

# (metric name, ChannelStats field, type, help)
_CHANNEL_METRICS = (
    ("minisentry_channel_depth", "depth", "gauge", "Messages buffered in the channel."),
    ("minisentry_channel_capacity", "capacity", "gauge", "Messages the channel may buffer."),
    ("minisentry_channel_peak_depth", "peak_depth", "gauge", "Highest depth seen since start."),
    ("minisentry_channel_senders_waiting", "senders_waiting", "gauge", "Producers blocked on a full channel."),
    ("minisentry_channel_receivers_waiting", "receivers_waiting", "gauge", "Consumers waiting for a message."),
    ("minisentry_channel_in_flight", "in_flight", "gauge", "Received messages not yet committed."),
    ("minisentry_channel_oldest_age_seconds", "oldest_age", "gauge", "Age of the oldest buffered message."),
    ("minisentry_channel_sent_total", "sent", "counter", "Messages sent into the channel."),
    ("minisentry_channel_acked_total", "acked", "counter", "Messages acknowledged by consumers."),
)
_LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{channel="([^"]*)"\})?\s+(\S+)$')


@dataclass(frozen=True, slots=True)
class Health:
    """The readiness verdict: ``ready`` and, when not, the reasons."""

    ready: bool
    reasons: tuple[str, ...] = ()


def health_of(running: bool, stats: Iterable[ChannelStats], stale_after: float) -> Health:
    """Judge readiness from the channel statistics. Never blocks."""
    if not running:
        return Health(False, ("pipeline is starting or draining",))
    reasons = []
    for index, channel in enumerate(stats):
        if index == 0 and channel.depth >= channel.capacity:
            reasons.append(f"channel {channel.name} is full ({channel.depth}/{channel.capacity})")
        if channel.oldest_age > stale_after:
            reasons.append(f"channel {channel.name}: oldest message waited {channel.oldest_age:.1f}s")
    return Health(not reasons, tuple(reasons))


def render(stats: Iterable[ChannelStats], counters: dict[str, tuple[float, str]], ready: bool) -> str:
    """Render channel statistics and ``counters`` ({name: (value, help)}) as Prometheus text."""
    stats = list(stats)
    lines: list[str] = []
    for metric, attr, kind, help_text in _CHANNEL_METRICS:
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} {kind}")
        for channel in stats:
            value = getattr(channel, attr)
            lines.append(f'{metric}{{channel="{channel.name}"}} {_number(value)}')
    for name, (value, help_text) in counters.items():
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {'counter' if name.endswith('_total') else 'gauge'}")
        lines.append(f"{name} {_number(value)}")
    lines.append("# HELP minisentry_ready 1 when the pipeline accepts events.")
    lines.append("# TYPE minisentry_ready gauge")
    lines.append(f"minisentry_ready {1 if ready else 0}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"


def parse(text: str) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Parse :func:`render`'s output into ({channel: {metric: value}}, {metric: value}).

    Lines it does not understand are skipped. Never raises on odd input.
    """
    channels: dict[str, dict[str, float]] = {}
    plain: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE_RE.match(line.strip())
        if match is None:
            continue
        name, channel, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            continue
        if channel is None:
            plain[name] = value
        else:
            channels.setdefault(channel, {})[name.removeprefix("minisentry_channel_")] = value
    return channels, plain
