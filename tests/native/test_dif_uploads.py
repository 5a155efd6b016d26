"""The debug-file assemble route over real HTTP: sentry-cli's protocol, every limit and every kind of bad input."""

from __future__ import annotations

import gzip
import hashlib

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.difapi import parse_assemble_body
from minisentry.errors import BadRequest

from ..conftest import TOKEN, running_pipeline

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHUNKS = "/api/0/organizations/minisentry/chunk-upload/"
DIFS = "/api/0/projects/minisentry/{project}/files/difs/assemble/"
MAPPING = b"com.example.Main -> a.a:\n    1:1:void main(java.lang.String[]):10:10 -> a\n"


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


async def upload(client: httpx.AsyncClient, data: bytes, size: int = 4096) -> list[str]:
    pieces = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    names = [sha1(piece) for piece in pieces]
    for start in range(0, len(pieces), 4):
        files = [("file_gzip", (name, gzip.compress(piece), "application/octet-stream"))
                 for name, piece in list(zip(names, pieces))[start:start + 4]]
        response = await client.post(CHUNKS, files=files, headers=AUTH)
        assert response.status_code == 200, response.text
    return names


async def assemble(client: httpx.AsyncClient, files: dict, project: str = "demo", headers=AUTH) -> httpx.Response:
    return await client.post(DIFS.format(project=project), content=orjson.dumps(files), headers=headers)


@pytest.fixture
def config(make_config):
    return make_config(sourcemaps={"chunk_size": 4096, "chunks_per_request": 4},
                       native={"max_file_bytes": 200_000, "max_store_bytes": 300_000})


async def test_the_sentry_cli_flow_and_the_index(config, inline_binary):
    data = inline_binary.read_bytes()
    checksum = sha1(data)
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        options = (await client.get(CHUNKS, headers=AUTH)).json()
        assert {"debug_files", "proguard"} <= set(options["accept"]) and options["maxFileSize"] >= 200_000
        names = [sha1(data[i:i + 4096]) for i in range(0, len(data), 4096)]
        first = (await assemble(client, {checksum: {"name": "inl", "chunks": names}})).json()
        assert first == {checksum: {"state": "not_found", "missingChunks": names, "detail": None}}
        await upload(client, data)
        done = (await assemble(client, {checksum: {"name": "inl", "debug_id": "ignored", "chunks": names}})).json()
        assert done[checksum]["state"] == "ok"
        dif = done[checksum]["dif"]
        assert dif["cpuName"] == "x86_64" and dif["objectName"] == "inl" and "debug" in dif["data"]["features"]
        # Already stored: ok at once, and indexed for another project without its chunks.
        again = (await assemble(client, {checksum: {"name": "inl", "chunks": names}}, project="other")).json()
        assert again[checksum]["state"] == "ok" and again[checksum]["dif"]["debugId"] == dif["debugId"]
    ref = pipeline.difs.find(2, dif["debugId"])
    assert ref is not None and ref.path.read_bytes() == data and ref.arch == "x86_64"
    assert pipeline.difs.find(1, None, code_id=ref and _code_id(pipeline, dif["debugId"])) is not None
    assert pipeline.difs.find(1, dif["debugId"], proguard=True) is None
    assert pipeline.artifacts.usage()["chunks"] == 0  # assembled chunks are removed


def _code_id(pipeline, debug_id: str) -> str:
    return pipeline.difs._query("SELECT code_id FROM dif_objects WHERE debug_id = ?", (debug_id,))[0][0]


async def test_proguard_mapping_is_indexed_by_its_uuid(config):
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        names = await upload(client, MAPPING)
        answer = (await assemble(client, {sha1(MAPPING): {"name": "/proguard/x.txt", "chunks": names}})).json()
    uuid = answer[sha1(MAPPING)]["dif"]["uuid"]
    assert answer[sha1(MAPPING)]["state"] == "ok"
    assert pipeline.difs.find(1, uuid, proguard=True) is not None and pipeline.difs.find(1, uuid) is None


@pytest.mark.parametrize("data, detail", [
    (b"\x00garbage that is no object file at all" * 10, "unsupported debug file"),
    (b"just some text\nwithout any mapping line\n", "unsupported debug file"),
    (b"\x7fELF" + b"\x00" * 60, "unsupported debug file"),
])
async def test_garbage_is_an_error_state_and_its_chunks_are_removed(config, data, detail):
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        names = await upload(client, data)
        answer = (await assemble(client, {sha1(data): {"name": "junk", "chunks": names}})).json()[sha1(data)]
    assert answer["state"] == "error" and detail in answer["detail"]
    assert pipeline.difs.usage()["difs"] == 0 and pipeline.artifacts.usage()["chunks"] == 0


async def test_chunks_that_do_not_add_up(config):
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        names = await upload(client, MAPPING)
        answer = (await assemble(client, {"0" * 40: {"name": "m", "chunks": names}})).json()["0" * 40]
    assert answer["state"] == "error" and "do not add up" in answer["detail"]


async def test_limits_file_size_and_store_size(make_config, inline_binary):
    data = inline_binary.read_bytes()
    small = make_config(sourcemaps={"chunk_size": 4096}, native={"max_file_bytes": len(data) - 1,
                                                                 "max_store_bytes": len(data) + 100})
    async with running_pipeline(small) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        names = await upload(client, data)
        answer = (await assemble(client, {sha1(data): {"name": "inl", "chunks": names}})).json()[sha1(data)]
        assert answer["state"] == "error" and "native.max_file_bytes" in answer["detail"]
        # The store holds one mapping; the next file does not fit.
        full = make_config(sourcemaps={"chunk_size": 4096}, native={"max_file_bytes": 100, "max_store_bytes": 100})
    async with running_pipeline(full) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        other = MAPPING.replace(b"Main", b"Other")
        for index, mapping in enumerate((MAPPING, other)):
            names = await upload(client, mapping)
            answer = (await assemble(client, {sha1(mapping): {"name": "m", "chunks": names}})).json()[sha1(mapping)]
            assert answer["state"] == ("ok" if index == 0 else "error")
        assert "native.max_store_bytes" in answer["detail"]
    assert pipeline.difs.usage() == {"difs": 1, "dif_bytes": len(MAPPING)}


@pytest.mark.parametrize("path, headers, body, status", [
    (DIFS.format(project="nope"), AUTH, {}, 404),
    ("/api/0/projects/other-org/demo/files/difs/assemble/", AUTH, {}, 404),
    (DIFS.format(project="demo"), {}, {}, 401),
    (DIFS.format(project="demo"), {"Authorization": "Bearer wrong"}, {}, 403),
    (DIFS.format(project="demo"), AUTH, [], 400),
    (DIFS.format(project="demo"), AUTH, {"ABC": {"name": "x", "chunks": []}}, 400),
    (DIFS.format(project="demo"), AUTH, {"a" * 40: {"name": "x", "chunks": ["zz"]}}, 400),
    (DIFS.format(project="demo"), AUTH, {"a" * 40: {"name": "", "chunks": []}}, 400),
    (DIFS.format(project="demo"), AUTH, {"a" * 40: {"name": "x", "chunks": [], "extra": 1}}, 400),
])
async def test_refused_requests(config, path, headers, body, status):
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        response = await client.post(path, content=orjson.dumps(body), headers=headers)
        assert response.status_code == status, response.text
        assert (await client.get(DIFS.format(project="demo"), headers=AUTH)).status_code == 405


_SHA1 = st.text("0123456789abcdef", min_size=40, max_size=40)
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=50) | _SHA1,
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=45) | _SHA1, inner,
                                                                                   max_size=4), max_leaves=20)
_ITEM = st.fixed_dictionaries({"name": _JSON, "chunks": st.lists(_SHA1 | _JSON, max_size=3)},
                              optional={"debug_id": _JSON, "other": _JSON})


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), _JSON.map(orjson.dumps),
                 st.dictionaries(_SHA1 | st.text(max_size=41), _ITEM | _JSON, max_size=3).map(orjson.dumps)))
def test_the_body_parser_only_ever_raises_bad_request(body):
    try:
        files = parse_assemble_body(body)
    except BadRequest:
        return
    assert all(len(checksum) == 40 and isinstance(name, str) and name for checksum, (name, _) in files.items())
