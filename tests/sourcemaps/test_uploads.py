"""The upload routes over real HTTP: sentry-cli's protocol, every limit and every kind of bad input."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import zipfile

import httpx
import orjson
import pytest

from minisentry.bundle_format import build_bundle

from ..conftest import TOKEN, running_pipeline

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHUNKS = "/api/0/organizations/minisentry/chunk-upload/"
ASSEMBLE = "/api/0/organizations/minisentry/artifactbundle/assemble/"
DEBUG_ID = "c7519b51-b8f4-5180-8a99-eab02e020367"


def bundle() -> bytes:
    return build_bundle([("~/app.js", "minified_source", {"debug-id": DEBUG_ID, "sourcemap": "app.js.map"},
                          b"function a(){throw new Error}\n//# sourceMappingURL=app.js.map\n"),
                         ("~/app.js.map", "source_map", {"debug-id": DEBUG_ID},
                          b'{"version":3,"sources":["a.js"],"names":[],"mappings":"AAAA"}')], release="r1")


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


async def post_chunks(client: httpx.AsyncClient, chunks: list[tuple[str, bytes]], *, gzipped: bool = True,
                      headers: dict | None = None) -> httpx.Response:
    field = "file_gzip" if gzipped else "file"
    files = [(field, (name, gzip.compress(data) if gzipped else data, "application/octet-stream"))
             for name, data in chunks]
    return await client.post(CHUNKS, files=files, headers=headers or AUTH)


async def assemble(client: httpx.AsyncClient, checksum: str, chunks: list[str], **extra) -> httpx.Response:
    body = {"checksum": checksum, "chunks": chunks, "projects": ["demo"], **extra}
    return await client.post(ASSEMBLE, content=orjson.dumps(body), headers=AUTH)


@pytest.fixture
def config(make_config):
    return make_config(sourcemaps={"chunk_size": 4096, "max_request_bytes": 16384, "max_chunk_store_bytes": 12000,
                                   "max_bundle_bytes": 6000, "max_store_bytes": 9000, "chunks_per_request": 4})


async def test_the_sentry_cli_flow_in_chunks(config):
    data = bundle()
    pieces = [data[i:i + 700] for i in range(0, len(data), 700)]
    names = [sha1(piece) for piece in pieces]
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        options = (await client.get(CHUNKS, headers=AUTH)).json()
        assert options["url"].endswith(CHUNKS) and options["hashAlgorithm"] == "sha1"
        assert options["chunkSize"] == 4096 and options["maxRequestSize"] == 16384
        assert "artifact_bundles" in options["accept"] and options["compression"] == ["gzip"]
        first = (await assemble(client, sha1(data), names, version="r1")).json()
        assert first == {"state": "not_found", "detail": None, "missingChunks": names}
        for start in range(0, len(pieces), 4):
            batch = list(zip(names, pieces))[start:start + 4]
            assert (await post_chunks(client, batch, gzipped=start == 0)).status_code == 200
        done = (await assemble(client, sha1(data), names, version="r1")).json()
        assert done["state"] == "ok"
        again = (await assemble(client, sha1(data), names, version="r1")).json()
        assert again["state"] == "ok"  # idempotent
    ref = pipeline.artifacts.by_debug_id(1, DEBUG_ID, "source_map")
    assert ref is not None and ref.url == "~/app.js.map"
    assert pipeline.artifacts.by_url(1, "r1", None, ["~/app.js"]).sourcemap == "app.js.map"
    assert pipeline.artifacts.usage()["chunks"] == 0  # assembled chunks are removed


async def test_auth_and_organization(config):
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        assert (await client.get(CHUNKS)).status_code == 401
        assert (await client.get(CHUNKS, headers={"Authorization": "Bearer wrong"})).status_code == 403
        response = await client.get("/api/0/organizations/acme/chunk-upload/", headers=AUTH)
        assert response.status_code == 404 and "acme" in response.json()["detail"]
        assert (await client.put(CHUNKS, headers=AUTH)).status_code == 405


async def test_chunk_limits_and_checksums(config):
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        big = b"x" * 4097
        response = await post_chunks(client, [(sha1(big), big)])
        assert response.status_code == 413 and "chunkSize" in response.json()["detail"]
        response = await post_chunks(client, [(sha1(big), big)], gzipped=False)
        assert response.status_code == 413
        data = b"y" * 100
        response = await post_chunks(client, [(sha1(b"other"), data)])
        assert response.status_code == 400 and "sha1" in response.json()["detail"]
        response = await post_chunks(client, [("not-a-sha1", data)])
        assert response.status_code == 400
        response = await client.post(CHUNKS, files=[("file_gzip", (sha1(data), b"not gzip", "x/y"))], headers=AUTH)
        assert response.status_code == 400 and "gzip" in response.json()["detail"]
        many = [(sha1(bytes([i])), bytes([i])) for i in range(5)]
        response = await post_chunks(client, many)
        assert response.status_code == 400 and "chunksPerRequest" in response.json()["detail"]
        response = await client.post(CHUNKS, content=b"x" * 16385, headers={**AUTH, "Content-Type": "text/plain"})
        assert response.status_code == 413  # the route's body limit (maxRequestSize)
        response = await client.post(CHUNKS, content=b"--b\r\nbroken", headers={
            **AUTH, "Content-Type": "multipart/form-data; boundary=b"})
        assert response.status_code == 400
        # The chunk store's total limit: three chunks of 4000 bytes do not fit into 12000 with others.
        blobs = [bytes([i]) * 4000 for i in range(3)]
        assert (await post_chunks(client, [(sha1(b), b) for b in blobs[:2]])).status_code == 200
        response = await post_chunks(client, [(sha1(blobs[2]) , blobs[2]), (sha1(b"z" * 50), b"z" * 50)])
        assert response.status_code == 413 and "chunk store is full" in response.json()["detail"]
        assert pipeline.artifacts.chunks.missing([sha1(b"z" * 50)])  # nothing of a refused request is kept


async def test_assemble_refusals(config):
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        garbage = b"this is not a zip file at all"
        assert (await post_chunks(client, [(sha1(garbage), garbage)])).status_code == 200
        response = await assemble(client, sha1(garbage), [sha1(garbage)])
        assert response.status_code == 400 and "not a zip" in response.json()["detail"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("files/a.js", b"x")
        no_manifest = buffer.getvalue()
        assert (await post_chunks(client, [(sha1(no_manifest), no_manifest)])).status_code == 200
        response = await assemble(client, sha1(no_manifest), [sha1(no_manifest)])
        assert response.status_code == 400 and "manifest.json" in response.json()["detail"]
        data = bundle()
        assert (await post_chunks(client, [(sha1(data), data)])).status_code == 200
        response = await assemble(client, sha1(b"wrong"), [sha1(data)])
        assert response.status_code == 400 and "do not add up" in response.json()["detail"]
        missing = (await assemble(client, sha1(data), [sha1(data), sha1(b"gone")])).json()
        assert missing["state"] == "not_found" and missing["missingChunks"] == [sha1(b"gone")]
        response = await client.post(ASSEMBLE, content=orjson.dumps(
            {"checksum": sha1(data), "chunks": [sha1(data)], "projects": ["nope"]}), headers=AUTH)
        assert response.status_code == 400 and "unknown project" in response.json()["detail"]
        for body in (b"{", b"[]", orjson.dumps({"checksum": "x", "chunks": [], "projects": ["demo"]}),
                     orjson.dumps({"checksum": sha1(data), "chunks": [1], "projects": ["demo"]}),
                     orjson.dumps({"checksum": sha1(data), "chunks": [], "projects": []}),
                     orjson.dumps({"checksum": sha1(data), "chunks": [], "projects": ["demo"], "extra": 1})):
            assert (await client.post(ASSEMBLE, content=body, headers=AUTH)).status_code == 400, body


async def test_bundle_and_store_limits(config):
    async with running_pipeline(config) as pipeline, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
        # Over max_bundle_bytes (6000): refused at assembly, whatever the chunks.
        pieces = [bytes([i]) * 3500 for i in range(2)]
        for piece in pieces:
            assert (await post_chunks(client, [(sha1(piece), piece)])).status_code == 200
        response = await assemble(client, sha1(b"".join(pieces)), [sha1(p) for p in pieces])
        assert response.status_code == 413 and "max_bundle_bytes" in response.json()["detail"]
        # Bundles fill max_store_bytes (9000): the one that would pass it is refused.
        stored = 0
        for index in range(20):
            noise = random.Random(index).randbytes(2000)  # incompressible, so each bundle is > 2000 bytes
            data = build_bundle([(f"~/f{index}.js", "minified_source", {}, noise)], release="r")
            await post_chunks(client, [(sha1(data), data)])
            response = await assemble(client, sha1(data), [sha1(data)])
            if response.status_code != 200:
                assert response.status_code == 413 and "artifact store is full" in response.json()["detail"]
                break
            stored += 1
        else:
            pytest.fail("the store limit was never reached")
    assert stored >= 1 and pipeline.artifacts.usage()["bundle_bytes"] <= 9000
