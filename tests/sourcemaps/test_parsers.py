"""Fuzzing the parsers of uploads (bundle zip + manifest; multipart is fuzzed in tests/test_multipart.py) and the URL helpers:
bad input is a precise BadRequest/ArtifactError, never another exception."""

from __future__ import annotations

import io
import zipfile

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.bundle_format import build_bundle, normalize_debug_id, parse_bundle
from minisentry.errors import ArtifactError
from minisentry.jsframes import candidate_urls, inline_sourcemap, join_url, sourcemap_reference


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


manifests = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=10),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), manifests.map(lambda m: _zip({"manifest.json": orjson.dumps(m)})),
                 st.dictionaries(st.sampled_from(["files/a.js", "manifest.json", "x"]), st.binary(max_size=50),
                                 max_size=3).map(_zip)))
def test_bundle_parser_never_fails_otherwise(data):
    try:
        parse_bundle(data, max_files=10, max_file_bytes=1000)
    except ArtifactError:
        pass


def test_bundle_limits_and_round_trip():
    data = build_bundle([("~/a.js", "minified_source", {"Debug-Id": "C7519B51B8F45180-8A99EAB02E020367"}, b"x" * 10)],
                        release="r")
    bundle = parse_bundle(data, max_files=5, max_file_bytes=100)
    assert bundle.release == "r" and bundle.files[0].debug_id == "c7519b51-b8f4-5180-8a99-eab02e020367"
    with pytest.raises(ArtifactError, match="exceeds"):
        parse_bundle(data, max_files=5, max_file_bytes=9)
    many = build_bundle([(f"~/{i}.js", "minified_source", {}, b"x") for i in range(4)])
    with pytest.raises(ArtifactError, match="more than"):
        parse_bundle(many, max_files=3, max_file_bytes=100)
    assert normalize_debug_id("nope") is None and normalize_debug_id(5) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40), st.binary(max_size=200))
def test_url_helpers_never_fail(url, reference, minified):
    assert candidate_urls(url)[0] == url.split("#", 1)[0]
    join_url(url, reference)
    sourcemap_reference(minified)
    inline_sourcemap("data:" + reference)


def test_candidates_and_joins():
    assert candidate_urls("https://cdn.example.com/static/app.js?v=2#x") == [
        "https://cdn.example.com/static/app.js?v=2", "~/static/app.js?v=2", "~/static/app.js"]
    assert candidate_urls("/srv/app/dist/bundle.js")[1:] == [
        "~/srv/app/dist/bundle.js", "~/app/dist/bundle.js", "~/dist/bundle.js", "~/bundle.js"]
    assert join_url("~/dist/bundle.js.map", "../src/app.ts") == "~/src/app.ts"
    assert join_url("/srv/dist/bundle.js", "../app.js") == "/srv/app.js"
    assert join_url("https://a.example/js/app.js", "app.js.map") == "https://a.example/js/app.js.map"
    assert sourcemap_reference(b"x\n//# sourceMappingURL=app.js.map\n") == "app.js.map"
    assert inline_sourcemap("data:application/json;base64,e30=") == b"{}"
