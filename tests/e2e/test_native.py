"""End to end: a C program built by the real gcc, its debug file uploaded by the real
``sentry-cli debug-files upload``, a native event symbolicated by the real server; and a ProGuard
mapping uploaded by ``sentry-cli proguard upload`` deobfuscating a Java event."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from ..conftest import KEY, TOKEN, base_config
from .test_sdk import cli, count, wait_for
from .test_sourcemaps import run, sentry_cli

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent / "native"
IMAGE_ADDR = 0x5555_5555_4000  # where the "process" loaded the program (any page-aligned address)


def post_event(server, event: dict) -> str:
    event_id = uuid.uuid4().hex
    body = orjson.dumps({"event_id": event_id}) + b"\n" + orjson.dumps({"type": "event"}) + b"\n" \
        + orjson.dumps({**event, "event_id": event_id}) + b"\n"
    response = httpx.post(f"{server.url}/api/1/envelope/", content=body,
                          headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7",
                                   "Content-Type": "application/x-sentry-envelope"})
    assert response.status_code == 200, response.text
    return event_id


def stored(server, db: Path, event_id: str) -> dict:
    wait_for(lambda: count(db, f"SELECT COUNT(*) FROM events WHERE event_id = '{event_id}'") == 1, timeout=30)
    shown = cli(server.config_path, "events", "show", event_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["data"]


def disassembly(binary: Path) -> dict[str, list[tuple[int, str]]]:
    """``{function: [(address, instruction), ...]}`` from the real objdump."""
    out = run("objdump", "-d", "--no-show-raw-insn", str(binary), cwd=binary.parent)
    functions: dict[str, list[tuple[int, str]]] = {}
    current = None
    for line in out.splitlines():
        header = re.match(r"^[0-9a-f]+ <(\w+)>:$", line)
        if header:
            current = functions.setdefault(header.group(1), [])
        elif current is not None and (insn := re.match(r"^\s+([0-9a-f]+):\s+(.*)$", line)):
            current.append((int(insn.group(1), 16), insn.group(2)))
    return functions


def return_address(functions: dict, caller: str, callee: str) -> int:
    """The address after ``caller``'s call to ``callee``: what a stack walk reports for that frame."""
    code = functions[caller]
    for index, (_, text) in enumerate(code):
        if text.startswith("call") and f"<{callee}>" in text:
            return code[index + 1][0]
    raise AssertionError(f"{caller} does not call {callee}")


@pytest.fixture
def program(tmp_path: Path) -> Path:
    if shutil.which("gcc") is None or shutil.which("objdump") is None:
        pytest.fail("gcc and objdump (binutils) are needed: apt-get install gcc binutils")
    shutil.copy(HERE / "crash.c", tmp_path / "crash.c")
    run("gcc", "-g", "-O0", "-Wl,--build-id", "-o", "crash", "crash.c", cwd=tmp_path)
    return tmp_path / "crash"


def native_event(binary: Path, debug_id: str) -> dict:
    functions = disassembly(binary)
    crash = next(addr for addr, text in functions["divide"] if text.startswith("idiv"))
    frames = [  # oldest first, as Sentry orders frames
        {"instruction_addr": hex(IMAGE_ADDR + return_address(functions, "main", "compute"))},
        {"instruction_addr": hex(IMAGE_ADDR + return_address(functions, "compute", "divide"))},
        {"instruction_addr": hex(IMAGE_ADDR + crash)},
    ]
    return {
        "platform": "native", "level": "fatal",
        "exception": {"values": [{"type": "SIGFPE", "value": "integer divide by zero",
                                  "stacktrace": {"frames": frames, "registers": {"rip": frames[-1]["instruction_addr"]}}}]},
        "debug_meta": {"images": [{"type": "elf", "debug_id": debug_id, "code_file": str(binary),
                                   "image_addr": hex(IMAGE_ADDR), "image_size": 0x5000}]},
    }


def test_sentry_cli_debug_files_upload_then_native_event_is_symbolicated(tmp_path, program, server_factory):
    server = server_factory(base_config(tmp_path))
    check = json.loads(run(sentry_cli(), "debug-files", "check", "--json", str(program), cwd=tmp_path))
    debug_id = check["variants"][0]["debug_id"]
    out = run(sentry_cli(), "--url", server.url, "--auth-token", TOKEN, "--log-level=info", "debug-files", "upload",
              "--org", "minisentry", "--project", "demo", str(program), cwd=tmp_path)
    assert "Uploaded 1 missing debug information file" in out and debug_id in out and "OK" in out
    # Uploading again finds it stored: nothing is sent twice.
    again = run(sentry_cli(), "--url", server.url, "--auth-token", TOKEN, "debug-files", "upload",
                "--org", "minisentry", "--project", "demo", str(program), cwd=tmp_path)
    assert "Uploaded 1 missing" not in again

    db = tmp_path / "store.sqlite"
    data = stored(server, db, post_event(server, native_event(program, debug_id)))
    frames = data["exception"]["values"][0]["stacktrace"]["frames"]
    assert [frame["function"] for frame in frames] == ["main", "compute", "divide"]
    assert [frame["lineno"] for frame in frames] == [14, 9, 5]
    assert all(frame["abs_path"] == str(tmp_path / "crash.c") and frame["filename"] == "crash.c" for frame in frames)
    assert frames[-1]["package"] == str(program)
    raw = data["exception"]["values"][0]["raw_stacktrace"]["frames"]
    assert "function" not in raw[-1] and raw[-1]["instruction_addr"] == frames[-1]["instruction_addr"]
    assert not [error for error in data.get("errors", []) if error["type"].startswith("native_")]

    # An image whose debug file was never uploaded: recorded on the event, which is still stored.
    missing = native_event(program, "0badc0de-0000-4000-8000-000000000001")
    data = stored(server, db, post_event(server, missing))
    assert any(error["type"] == "native_missing_dsym" for error in data["errors"])
    assert "function" not in data["exception"]["values"][0]["stacktrace"]["frames"][-1]


def test_sentry_cli_proguard_upload_then_java_event_is_deobfuscated(tmp_path, server_factory):
    server = server_factory(base_config(tmp_path))
    shutil.copy(HERE / "mapping.txt", tmp_path / "mapping.txt")
    mapping_uuid = run(sentry_cli(), "proguard", "uuid", "mapping.txt", cwd=tmp_path).strip().splitlines()[-1]
    out = run(sentry_cli(), "--url", server.url, "--auth-token", TOKEN, "--log-level=info", "proguard", "upload",
              "--org", "minisentry", "--project", "demo", "mapping.txt", cwd=tmp_path)
    assert "OK" in out and mapping_uuid in out
    event = {
        "platform": "java", "level": "error",
        "exception": {"values": [{"type": "b", "module": "a", "value": "bad price", "stacktrace": {"frames": [
            {"module": "a.a", "function": "b", "lineno": 7, "filename": "SourceFile", "in_app": True},
            {"module": "a.a", "function": "a", "lineno": 4, "filename": "SourceFile", "in_app": True},
        ]}}]},
        "debug_meta": {"images": [{"type": "proguard", "uuid": mapping_uuid}]},
    }
    db = tmp_path / "store.sqlite"
    data = stored(server, db, post_event(server, event))
    value = data["exception"]["values"][0]
    assert (value["module"], value["type"]) == ("com.example.shop", "PriceError")
    frames = value["stacktrace"]["frames"]
    assert [(f["module"], f["function"], f["lineno"]) for f in frames] == [
        ("com.example.shop.Checkout", "checkout", 31), ("com.example.shop.Checkout", "parsePrice", 21)]
    assert frames[0]["filename"] == "Checkout.java"
    assert value["raw_stacktrace"]["frames"][1]["function"] == "a"
