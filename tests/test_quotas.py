"""Quotas and rate limits: windows, scopes, categories, the header format, active limits, bounds.

Time is always injected (a fake clock): nothing here sleeps or reads the wall clock.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentry_sdk.transport import _parse_rate_limits as sdk_parse_rate_limits

from minisentry.envelope import Item
from minisentry.errors import ConfigError
from minisentry.outcomes import _ITEM_CATEGORIES, category_of_item
from minisentry.quotas import (CATEGORIES, REJECT_ALL_SECS, CounterRequest, MemoryQuotaCounters, Quota,
                               QuotaCounters, RateLimit, RateLimiter, envelope_quantities, format_rate_limits,
                               parse_rate_limits, partition_items, quotas_from_config, slot_end)

KEY = "0123456789abcdef0123456789abcdef"
OTHER_KEY = "fedcba9876543210fedcba9876543210"


class Clock:
    """A settable clock (unix seconds)."""

    def __init__(self, now: float = 1_000_040.0) -> None:  # 20 s into [1_000_020, 1_000_080)
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingCounters(MemoryQuotaCounters):
    """Memory counters that record every call, to prove which checks touched them."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls: list[list[list[str]]] = []

    async def check_and_increment(self, groups, now):
        self.calls.append([[request.key for request in group] for group in groups])
        return await super().check_and_increment(groups, now)


def errors_per_minute(limit: int = 3, **fields) -> Quota:
    return Quota(**{"id": "errors", "categories": ("error",), "limit": limit, "window": 60,
                    "reason_code": "too_many_errors", **fields})


def make_limiter(clock: Clock, **kwargs) -> tuple[RateLimiter, RecordingCounters]:
    counters = RecordingCounters(**kwargs)
    return RateLimiter(counters, clock), counters


# -- Quota and its config table ---------------------------------------------------------------------


def test_from_mapping_builds_the_readme_example():
    raw = {"id": "errors-per-minute", "project": 1, "categories": ["error"], "limit": 100, "window": 60,
           "scope": "project", "reason_code": "too_many_errors"}
    quota = Quota.from_mapping(raw, "quotas[0]")
    assert quota == Quota("errors-per-minute", ("error",), "project", 100, 60, "too_many_errors", 1)
    assert quotas_from_config([raw]) == (quota,)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"id": "q", "categories": ["error"], "limit": 1, "window": 60, "limt": 2}, "unknown key 'quotas[0].limt'"),
        ({"categories": ["error"], "limit": 1, "window": 60}, "quotas[0] is missing required key(s) id"),
        ({"id": "q", "categories": ["error"], "limit": 1}, "quotas[0] is missing required key(s) window"),
        ({"id": "q", "categories": ["error"], "limit": 1.5, "window": 60}, "quotas[0].limit must be an integer"),
        ({"id": "q", "categories": ["error"], "limit": True, "window": 60}, "quotas[0].limit must be an integer"),
        ({"id": "q", "categories": "error", "limit": 1, "window": 60}, "quotas[0].categories must be a list"),
        ({"id": "q", "categories": ["errors"], "limit": 1, "window": 60}, "quotas[0].categories: unknown category"),
        ({"id": "q", "categories": ["error", "error"], "limit": 1, "window": 60}, "quotas[0].categories lists"),
        ({"id": "q", "categories": ["error"], "limit": -1, "window": 60}, "quotas[0].limit must be an integer >= 0"),
        ({"id": "q", "categories": ["error"], "limit": 1, "window": 0}, "quotas[0].window must be 1.."),
        ({"id": "q", "categories": ["error"], "limit": 1, "window": 60, "scope": "org"}, "quotas[0].scope must be"),
        ({"id": "a b", "categories": ["error"], "limit": 1, "window": 60}, "quotas[0].id must be"),
        ({"id": "q", "categories": ["error"], "limit": 1, "window": 60, "reason_code": "a:b"},
         "quotas[0].reason_code must be"),
        ({"id": "q", "categories": ["error"], "limit": 1, "window": 60, "project": 0}, "quotas[0].project must be"),
        ({"id": "q", "categories": ["error"], "limit": 1, "window": 60, "key": "ABC"}, "quotas[0].key must be"),
        ({"id": "q", "limit": 100, "window": 60}, "quotas[0].categories must be listed for a counted quota"),
        ({"id": "q", "categories": ["error", "attachment"], "limit": 100, "window": 60}, "quotas[0].categories mix"),
        ("not a table", "quotas[0] must be a table"),
    ],
)
def test_from_mapping_refuses_a_bad_table_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=r"^minisentry\.toml: ") as caught:
        Quota.from_mapping(raw, "quotas[0]", label="minisentry.toml")
    assert message in str(caught.value)


def test_reject_all_quotas_need_neither_categories_nor_window():
    quota = Quota.from_mapping({"id": "off", "limit": 0, "reason_code": "disabled"}, "quotas[0]")
    assert quota.categories == () and quota.limit == 0
    assert Quota("mixed", ("error", "attachment"), limit=0).limit == 0  # no counting, so no unit to mix


def test_quotas_from_config_refuses_duplicate_ids_and_non_arrays():
    table = {"id": "q", "categories": ["error"], "limit": 1, "window": 60}
    with pytest.raises(ConfigError, match=r"quotas\[1\]\.id 'q' is used twice"):
        quotas_from_config([table, dict(table)])
    with pytest.raises(ConfigError, match=r"array of tables"):
        quotas_from_config(table)


def test_categories_are_exactly_what_envelope_items_map_to():
    assert set(CATEGORIES) == {category_of_item(t) for t in _ITEM_CATEGORIES} | {"default"}


# -- window counting --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_limit_is_reached_exactly_and_the_next_window_resets():
    clock = Clock(1_000_040.0)
    limiter, counters = make_limiter(clock)
    quotas = [errors_per_minute(3)]
    for _ in range(3):  # exactly `limit` pass
        result = await limiter.check(1, KEY, {"error": 1}, quotas)
        assert result.accepted == {"error": 1} and not result.is_limited and result.header() == ""
    result = await limiter.check(1, KEY, {"error": 1}, quotas)
    assert result.accepted == {}
    assert result.rejected == {"error": RateLimit(40, ("error",), "project", "too_many_errors")}
    assert result.retry_after == 40 and result.reason("error") == "too_many_errors"
    assert result.header() == "40:error:project:too_many_errors"

    clock.now = 1_000_080.0  # the next window starts at 1_000_080 (a multiple of 60)
    assert (await limiter.check(1, KEY, {"error": 3}, quotas)).accepted == {"error": 3}
    assert len(counters) == 1  # the old window's counter is gone


@pytest.mark.anyio
async def test_what_is_rejected_is_not_counted():
    clock = Clock()
    shared = MemoryQuotaCounters()
    quotas = [Quota("bytes", ("attachment",), limit=100, window=60, reason_code="attachments")]
    first = RateLimiter(shared, clock)
    assert (await first.check(1, KEY, {"attachment": 60}, quotas)).accepted == {"attachment": 60}
    assert (await first.check(1, KEY, {"attachment": 50}, quotas)).rejected  # 110 > 100
    # A limiter without the active limit, on the same counters, sees 60: the 50 were not added.
    second = RateLimiter(shared, clock)
    assert (await second.check(1, KEY, {"attachment": 40}, quotas)).accepted == {"attachment": 40}
    assert (await second.check(1, KEY, {"attachment": 1}, quotas)).rejected


@pytest.mark.anyio
async def test_all_quotas_of_a_category_are_incremented_together_or_not_at_all():
    clock = Clock()
    shared = MemoryQuotaCounters()
    loose, tight = errors_per_minute(2, id="loose"), errors_per_minute(1, id="tight", reason_code="tight")
    limiter = RateLimiter(shared, clock)
    assert (await limiter.check(1, KEY, {"error": 1}, [loose, tight])).accepted == {"error": 1}
    result = await limiter.check(1, KEY, {"error": 1}, [loose, tight])
    assert result.reason("error") == "tight" and result.header() == "40:error:project:tight"
    # `loose` stayed at 1 although its own limit had room: one more fits, then it rejects.
    other = RateLimiter(shared, clock)
    assert (await other.check(1, KEY, {"error": 1}, [loose])).accepted == {"error": 1}
    assert (await other.check(1, KEY, {"error": 1}, [loose])).rejected


@pytest.mark.parametrize("now, window, expected", [
    (1_000_040.0, 60, 40), (1_000_040.5, 60, 40), (1_000_079.999, 60, 1), (1_000_080.0, 60, 60), (7.2, 10, 3),
])
@pytest.mark.anyio
async def test_retry_after_is_the_rest_of_the_window_rounded_up(now, window, expected):
    limiter, _ = make_limiter(Clock(now))
    quota = Quota("q", ("error",), limit=1, window=window)
    await limiter.check(1, KEY, {"error": 1}, [quota])
    assert (await limiter.check(1, KEY, {"error": 1}, [quota])).retry_after == expected


@given(now=st.floats(min_value=0, max_value=4e9, allow_nan=False), window=st.integers(1, 366 * 86400))
def test_slot_end_is_the_next_multiple_of_the_window(now, window):
    end = slot_end(now, window)
    assert end % window == 0 and end - window <= now < end
    assert 1 <= max(1, math.ceil(end - now)) <= window


@settings(max_examples=50, deadline=None)
@given(quantities=st.lists(st.integers(1, 40), max_size=12), limit=st.integers(1, 100))
def test_a_window_accepts_the_longest_prefix_that_fits(quantities, limit):
    async def run() -> list[bool]:
        limiter = RateLimiter(MemoryQuotaCounters(), Clock())
        quota = Quota("q", ("attachment",), limit=limit, window=60)
        return [not (await limiter.check(1, KEY, {"attachment": q}, [quota])).is_limited for q in quantities]

    accepted = anyio.run(run)
    expected, total, blocked = [], 0, False
    for quantity in quantities:  # once rejected, blocked until the window ends (Relay's cached limit)
        ok = not blocked and total + quantity <= limit
        expected.append(ok)
        total += quantity if ok else 0
        blocked = blocked or not ok
    assert accepted == expected


@pytest.mark.anyio
async def test_a_count_only_quota_counts_and_never_rejects():
    clock, counters = Clock(), MemoryQuotaCounters()
    quota = Quota("seen", ("error",), limit=None, window=60)
    for _ in range(5):
        assert not (await RateLimiter(counters, clock).check(1, KEY, {"error": 10}, [quota])).is_limited
    assert len(counters) == 1
    # The id names the counter, so giving the quota a limit later keeps what was counted: 50.
    limited = Quota("seen", ("error",), limit=52, window=60)
    limiter = RateLimiter(counters, clock)
    assert not (await limiter.check(1, KEY, {"error": 2}, [limited])).is_limited
    assert (await limiter.check(1, KEY, {"error": 1}, [limited])).is_limited


# -- scopes, filters, categories --------------------------------------------------------------------


@pytest.mark.anyio
async def test_project_scope_counts_each_project_once_for_all_its_keys():
    limiter, _ = make_limiter(Clock())
    quotas = [errors_per_minute(1, scope="project")]
    assert not (await limiter.check(1, KEY, {"error": 1}, quotas)).is_limited
    assert (await limiter.check(1, OTHER_KEY, {"error": 1}, quotas)).is_limited  # same project
    assert not (await limiter.check(2, OTHER_KEY, {"error": 1}, quotas)).is_limited  # another project


@pytest.mark.anyio
async def test_key_scope_counts_each_key_separately():
    limiter, _ = make_limiter(Clock())
    quotas = [errors_per_minute(1, scope="key")]
    assert not (await limiter.check(1, KEY, {"error": 1}, quotas)).is_limited
    result = await limiter.check(1, KEY, {"error": 1}, quotas)
    assert result.header() == "40:error:key:too_many_errors"
    assert not (await limiter.check(1, OTHER_KEY, {"error": 1}, quotas)).is_limited
    # Without a key (an embedded submission) a key quota cannot be scoped and does not apply.
    assert not (await limiter.check(1, None, {"error": 5}, quotas)).is_limited


@pytest.mark.anyio
async def test_organization_scope_counts_all_projects_together():
    limiter, _ = make_limiter(Clock())
    quotas = [errors_per_minute(1, scope="organization")]
    assert not (await limiter.check(1, KEY, {"error": 1}, quotas)).is_limited
    assert (await limiter.check(2, OTHER_KEY, {"error": 1}, quotas)).header() == \
        "40:error:organization:too_many_errors"


@pytest.mark.anyio
async def test_project_and_key_filters_select_which_envelopes_count():
    limiter, _ = make_limiter(Clock())
    quotas = [errors_per_minute(1, id="p2", project=2), errors_per_minute(1, id="k", key=KEY, scope="key")]
    for _ in range(3):
        assert not (await limiter.check(1, OTHER_KEY, {"error": 1}, quotas)).is_limited  # neither applies
    assert not (await limiter.check(2, OTHER_KEY, {"error": 1}, quotas)).is_limited
    assert (await limiter.check(2, OTHER_KEY, {"error": 1}, quotas)).is_limited
    assert not (await limiter.check(1, KEY.upper(), {"error": 1}, quotas)).is_limited
    assert (await limiter.check(1, KEY, {"error": 1}, quotas)).is_limited


@pytest.mark.anyio
async def test_a_quota_over_several_categories_shares_one_counter():
    limiter, _ = make_limiter(Clock())
    quota = Quota("events", ("error", "transaction"), limit=2, window=60, reason_code="events")
    assert not (await limiter.check(1, KEY, {"error": 1, "transaction": 1}, [quota])).is_limited
    result = await limiter.check(1, KEY, {"transaction": 1}, [quota])
    assert result.header() == "40:error;transaction:project:events"
    # The active limit now blocks both categories, as Relay's cached rate limit does.
    assert set((await limiter.check(1, KEY, {"error": 1}, [quota])).rejected) == {"error"}


@pytest.mark.anyio
async def test_limit_zero_with_no_categories_rejects_everything_without_counting():
    limiter, counters = make_limiter(Clock())
    quota = Quota("off", (), limit=0, reason_code="disabled")
    quantities = {"error": 1, "transaction": 2, "attachment": 100, "session": 1}
    result = await limiter.check(1, KEY, quantities, [quota])
    assert result.accepted == {} and set(result.rejected) == set(quantities)
    assert result.retry_after == REJECT_ALL_SECS
    assert result.header() == "60::project:disabled"
    assert counters.calls == [] and len(counters) == 0


@pytest.mark.anyio
async def test_in_a_mixed_envelope_only_the_limited_category_is_rejected():
    limiter, _ = make_limiter(Clock())
    quotas = [errors_per_minute(0)]
    result = await limiter.check(1, KEY, {"error": 1, "transaction": 1}, quotas)
    assert result.accepted == {"transaction": 1}
    assert list(result.rejected) == ["error"]
    assert result.header() == "60:error:project:too_many_errors"


@pytest.mark.anyio
async def test_items_of_a_rejected_event_share_its_fate_uncounted():
    limiter, counters = make_limiter(Clock())
    attachments = Quota("bytes", ("attachment",), limit=1000, window=60, reason_code="bytes")
    quotas = [errors_per_minute(0), attachments]
    result = await limiter.check(1, KEY, {"error": 1, "attachment": 500, "transaction": 1}, quotas)
    assert result.accepted == {"transaction": 1}
    assert result.rejected["attachment"] == result.rejected["error"]
    assert result.header() == "60:error:project:too_many_errors"  # the attachment limit is not announced
    assert counters.calls == []  # nothing was counted
    # Attachments sent on their own (their event came earlier) are checked against their quota.
    assert (await limiter.check(1, KEY, {"attachment": 500}, quotas)).accepted == {"attachment": 500}


def test_negative_quantities_are_a_programming_error():
    limiter = RateLimiter(MemoryQuotaCounters(), Clock())
    with pytest.raises(ValueError, match="'error'"):
        anyio.run(limiter.check, 1, KEY, {"error": -1}, [errors_per_minute()])


# -- active limits ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_active_limits_reject_without_touching_the_counters_until_the_window_ends():
    clock = Clock(1_000_040.0)
    limiter, counters = make_limiter(clock)
    quotas = [errors_per_minute(1)]
    await limiter.check(1, KEY, {"error": 1}, quotas)
    await limiter.check(1, KEY, {"error": 1}, quotas)  # rejected by the counter: becomes active
    calls = len(counters.calls)
    clock.now = 1_000_050.5
    result = await limiter.check(1, KEY, {"error": 1, "transaction": 1}, quotas)
    assert result.header() == "30:error:project:too_many_errors" and result.accepted == {"transaction": 1}
    assert len(counters.calls) == calls  # the cheap path: no counter call (transactions have no quota)
    clock.now = 1_000_080.0
    assert (await limiter.check(1, KEY, {"error": 1}, quotas)).accepted == {"error": 1}
    assert len(counters.calls) == calls + 1


@pytest.mark.anyio
async def test_active_limits_announce_fully_blocked_categories_for_a_200():
    clock = Clock(1_000_040.0)
    limiter, _ = make_limiter(clock)
    quotas = [errors_per_minute(1), Quota("no-spans", ("span",), limit=0, reason_code="spans_off", project=1)]
    assert format_rate_limits(limiter.active_limits(1, KEY, quotas)) == "60:span:project:spans_off"
    await limiter.check(1, KEY, {"error": 2}, quotas)  # 2 > 1: rejected
    clock.now = 1_000_050.0
    assert format_rate_limits(limiter.active_limits(1, KEY, quotas)) == \
        "30:error:project:too_many_errors, 60:span:project:spans_off"
    assert limiter.active_limits(2, KEY, quotas) == ()  # another project is not blocked
    clock.now = 1_000_080.0
    assert format_rate_limits(limiter.active_limits(1, KEY, quotas)) == "60:span:project:spans_off"


@pytest.mark.anyio
async def test_past_max_active_limits_the_counters_still_reject():
    limiter = RateLimiter(RecordingCounters(), Clock(), max_active_limits=1)
    quotas = [errors_per_minute(1)]
    for project in (1, 2):
        await limiter.check(project, KEY, {"error": 1}, quotas)
        assert (await limiter.check(project, KEY, {"error": 1}, quotas)).is_limited
    assert len(limiter.active_limits(1, KEY, quotas)) == 1 and limiter.active_limits(2, KEY, quotas) == ()
    assert (await limiter.check(2, KEY, {"error": 1}, quotas)).is_limited  # via the counter


# -- memory counters --------------------------------------------------------------------------------


def test_memory_counters_follow_the_protocol():
    assert isinstance(MemoryQuotaCounters(), QuotaCounters)
    with pytest.raises(ValueError, match="max_keys"):
        MemoryQuotaCounters(max_keys=0)


@pytest.mark.anyio
async def test_at_max_keys_new_counters_are_not_created_and_pass_uncounted():
    clock = Clock(1_000_040.0)
    counters = MemoryQuotaCounters(max_keys=2)
    limiter = RateLimiter(counters, clock)
    quotas = [errors_per_minute(1)]
    for project in (1, 2):
        assert not (await limiter.check(project, KEY, {"error": 1}, quotas)).is_limited
    assert len(counters) == 2
    for _ in range(3):  # project 3 finds no room: passes, uncounted (fails open)
        assert not (await limiter.check(3, KEY, {"error": 1}, quotas)).is_limited
    assert len(counters) == 2 and counters.uncounted == 3
    assert (await limiter.check(1, KEY, {"error": 1}, quotas)).is_limited  # existing counters still count
    # A new counter's request is still judged against 0: more than the limit is rejected.
    assert (await limiter.check(3, KEY, {"error": 2}, quotas)).is_limited
    clock.now = 1_000_080.0  # the window ended: its counters are removed, there is room again
    assert not (await limiter.check(3, KEY, {"error": 1}, quotas)).is_limited
    assert len(counters) == 1 and counters.uncounted == 3


@pytest.mark.anyio
async def test_memory_counters_check_each_group_atomically():
    counters = MemoryQuotaCounters()
    a, b = CounterRequest("a", 1, 1, 60), CounterRequest("b", None, 5, 60)
    assert await counters.check_and_increment([[a, b], [a, b]], 0.0) == [[False, False], [True, False]]
    assert (counters.value("a", 0.0), counters.value("b", 0.0)) == (1, 5)
    assert counters.value("a", 60.0) == 0 and len(counters) == 0


# -- the X-Sentry-Rate-Limits header ----------------------------------------------------------------


@pytest.mark.parametrize("limits, header", [
    # The examples of Sentry's develop docs ("Rate Limiting") and of the brief.
    ([RateLimit(60, ("transaction",), "key"), RateLimit(2700, ("default", "error", "security"), "organization")],
     "60:transaction:key, 2700:default;error;security:organization"),
    ([RateLimit(60, (), "organization"), RateLimit(2700, (), "organization")], "60::organization, 2700::organization"),
    ([RateLimit(2700, ("metric_bucket",), "organization", "quota_exceeded", ("custom",))],
     "2700:metric_bucket:organization:quota_exceeded:custom"),
    ([RateLimit(60, ("error", "transaction"), "key", "too_many_errors"), RateLimit(10, (), "organization")],
     "60:error;transaction:key:too_many_errors, 10::organization"),
    ([RateLimit(5, ("metric_bucket",), "organization", None, ("a", "b"))], "5:metric_bucket:organization::a;b"),
    ([], ""),
])
def test_format_matches_sentrys_examples_and_parses_back(limits, header):
    assert format_rate_limits(limits) == header
    assert parse_rate_limits(header) == limits


def test_parse_is_tolerant_like_sdks_and_relay():
    readable = "\n  60:transaction:key,\n  2700:default;error;security:organization\n"
    assert parse_rate_limits(readable) == [RateLimit(60, ("transaction",), "key"),
                                           RateLimit(2700, ("default", "error", "security"), "organization")]
    assert parse_rate_limits("17.7:error, -2:session, nope:error, , 1e999:x, 3 : error ; : key : r : : extra") == [
        RateLimit(18, ("error",)), RateLimit(0, ("session",)), RateLimit(3, ("error",), "key", "r")]
    assert parse_rate_limits("9" * 400 + ":error") == []  # too big for a float


def test_categories_are_written_in_relays_data_category_order():
    quota = Quota("q", ("security", "transaction", "default", "error"), limit=1, window=60)
    assert format_rate_limits([quota.rate_limit(5)]) == "5:default;error;transaction;security:project"


_token = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
_limits = st.lists(st.builds(
    RateLimit,
    retry_after=st.integers(0, 10**9),
    categories=st.lists(_token, max_size=4).map(tuple),
    scope=st.sampled_from(["organization", "project", "key", ""]),
    reason_code=st.none() | _token,
    namespaces=st.lists(_token, max_size=3).map(tuple),
), max_size=6)


@given(_limits)
def test_parse_format_round_trip(limits):
    assert parse_rate_limits(format_rate_limits(limits)) == limits


@given(st.text(max_size=200))
def test_parse_never_raises_and_reformats_stably(header):
    limits = parse_rate_limits(header)
    assert parse_rate_limits(format_rate_limits(limits)) == limits


@given(_limits)
def test_sentry_python_reads_our_header_as_we_mean_it(limits):
    """sentry-python's own parser: each category (or None = all) is disabled for retry_after seconds."""
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    expected = [(category, now + timedelta(seconds=limit.retry_after))
                for limit in limits for category in (limit.categories or (None,))]
    assert list(sdk_parse_rate_limits(format_rate_limits(limits), now=now)) == expected


@pytest.mark.anyio
async def test_sentry_python_stops_sending_exactly_the_rejected_category():
    limiter, _ = make_limiter(Clock(1_000_040.0))
    result = await limiter.check(1, KEY, {"error": 1, "transaction": 1}, [errors_per_minute(0)])
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert dict(sdk_parse_rate_limits(result.header(), now=now)) == {"error": now + timedelta(seconds=60)}


# -- envelopes --------------------------------------------------------------------------------------


def _items() -> list[Item]:
    return [
        Item({"type": "event"}, b"{}"),
        Item({"type": "attachment", "filename": "a.txt"}, b"x" * 300),
        Item({"type": "attachment", "filename": "b.txt"}, b"y" * 200),
        Item({"type": "transaction"}, b"{}"),
        Item({"type": "client_report"}, b"{}"),
        Item({"type": "made_up"}, b"?"),
    ]


def test_envelope_quantities_count_items_and_attachment_bytes():
    assert envelope_quantities(_items()) == {"error": 1, "attachment": 500, "transaction": 1, "default": 1}


@pytest.mark.anyio
async def test_partition_items_keeps_the_allowed_and_client_reports():
    limiter, _ = make_limiter(Clock())
    items = _items()
    result = await limiter.check(1, KEY, envelope_quantities(items), [errors_per_minute(0)])
    kept, dropped = partition_items(items, result)
    assert [item.type for item in kept] == ["transaction", "client_report", "made_up"]
    assert [(item.type, category, limit.reason_code) for item, category, limit in dropped] == [
        ("event", "error", "too_many_errors"), ("attachment", "attachment", "too_many_errors"),
        ("attachment", "attachment", "too_many_errors")]
