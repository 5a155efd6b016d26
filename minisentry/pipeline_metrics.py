"""The counters a Pipeline adds to its channel statistics on ``/metrics`` (see metrics.render)."""

from __future__ import annotations

from typing import Any

__all__ = ["counters_of"]

_ALERT_HELP = {
    "sent": "Alerts delivered to a target.",
    "failed": "Alert deliveries given up (after retries, or not retryable).",
    "refused": "Alert deliveries refused by the webhook address policy (SSRF).",
    "retried": "Alert delivery attempts that failed and were tried again.",
    "suppressed": "Alerts dropped by a rule's rate limit.",
    "stale": "Log rows older than alerts.max_age, skipped.",
    "queued": "Log rows read by the alert worker whose deliveries have not finished.",
}


def counters_of(pipeline: Any) -> dict[str, tuple[float, str]]:
    """Return ``{metric name: (value, help)}`` for a running Pipeline. Never blocks."""
    ctx = pipeline.context
    counters = {
        "minisentry_envelopes_accepted_total": (pipeline.relay.accepted if pipeline.relay else 0,
                                                "Envelopes answered 200 by the relay."),
        "minisentry_events_stored_total": (ctx.stored if ctx else 0, "Events and transactions newly stored."),
        "minisentry_events_duplicate_total": (ctx.duplicates if ctx else 0,
                                              "Redelivered events skipped by the idempotent store."),
        "minisentry_outcomes_dropped_total": (pipeline.outcomes.dropped,
                                              "Outcome counts lost at the aggregation bound."),
        "minisentry_http_active_requests": (pipeline.server.active_requests if pipeline.server else 0,
                                            "Requests being answered now."),
    }
    if pipeline.lanes is not None:
        counters["minisentry_lane_slow_projects"] = (
            sum(1 for entry in pipeline.lanes.snapshot() if entry["lane"] == "slow"),
            "Projects whose events go to the slow lane now.")
    if pipeline.forwarder is not None:
        counters["minisentry_upstream_forwarded_total"] = (pipeline.forwarder.forwarded,
                                                           "Envelopes the upstream took.")
        counters["minisentry_upstream_up"] = (int(pipeline.forwarder.up), "Whether the upstream answered last.")
    if pipeline.spool is not None:
        counters["minisentry_spool_messages"] = (len(pipeline.spool), "Envelopes waiting in the on-disk spool.")
        counters["minisentry_spool_bytes"] = (pipeline.spool.size_bytes, "Bytes waiting in the on-disk spool.")
    if getattr(pipeline, "alerts", None) is not None:
        for name, value in pipeline.alerts.statistics().items():
            counters[f"minisentry_alerts_{name}" + ("" if name == "queued" else "_total")] = (value, _ALERT_HELP[name])
    for symbolicator in pipeline.symbolicators:
        if hasattr(symbolicator, "statistics"):
            for name, value in symbolicator.statistics().items():
                counters[f"minisentry_symbolicator_{symbolicator.name}_{name}"] = (
                    value, f"Symbolicator {symbolicator.name}: {name.replace('_', ' ')}.")
    return counters
