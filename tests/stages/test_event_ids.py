"""normalize_event_id: the canonical 32-hex form of any UUID spelling, None for anything else."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from minisentry.stages.ingest import normalize_event_id


def _by_uuid(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value).hex
    except ValueError:
        return None


_spellings = st.uuids().flatmap(lambda u: st.sampled_from(
    [u.hex, u.hex.upper(), str(u), str(u).upper(), "{" + str(u) + "}", "urn:uuid:" + str(u), u.hex[:31] + "g"]))


@given(st.one_of(_spellings, st.text(max_size=40), st.text(alphabet="0123456789abcdefABCDEF-{}", min_size=30, max_size=38),
                 st.integers(), st.none()))
def test_same_answer_as_the_uuid_module(value):
    assert normalize_event_id(value) == _by_uuid(value)
