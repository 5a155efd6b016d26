"""Throughput on Kafka with one and two processing workers, against the in-memory pipeline, in one run.

Each setup is a set of real ``minisentry serve`` processes on a fresh SQLite store:

- ``memory``: one process, every stage, in-memory channels (the laptop default);
- ``kafka, 1 process worker``: relay, ingest, symbolicate, process and store as separate processes
  (``--role``), connected by Kafka topics, large payloads and fan-out on Redis;
- ``kafka, 2 process workers``: the same with a second ``--role process`` process in the group.

A fixed number of real ``sentry-sdk`` error envelopes (bench/envelopes.py: recorded once, each copy
with its own event id, brotli as the SDK sends them) is POSTed by ``--senders`` threads; the figure
is events stored per second, from the first request until the last event is in the store. PII
scrubbing is on (the default), so processing is the expensive stage, as in production.

Needs a Kafka broker and a Redis: by default those ``scripts/services.sh start`` started (read
from ``.services/env``), or ``--kafka HOST:PORT --redis URL``.

Run: ``python bench/bench_scale_out.py [--events 3000] [--senders 8] [--setups memory,kafka1,kafka2]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from envelopes import DEFAULT_KEY, make_bodies, request_headers  # noqa: E402
from tests.conftest import write_config  # noqa: E402
from tests.services import _lookup  # noqa: E402

SETUPS = {
    "memory": ("memory", ("all",)),
    "kafka1": ("kafka, 1 process worker", ("store", "process", "symbolicate", "ingest", "relay")),
    "kafka2": ("kafka, 2 process workers", ("store", "process", "process", "symbolicate", "ingest", "relay")),
}


def _start(config: Path, role: str, log: Path) -> tuple[subprocess.Popen, int | None]:
    out = log.open("w")
    args = [sys.executable, "-m", "minisentry", "--config", str(config), "serve"]
    if role != "all":
        args += ["--role", role]
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text()
        if proc.poll() is not None:
            raise SystemExit(f"{role} exited:\n{text[-2000:]}")
        ports = re.findall(r"listening on http://[^:]+:(\d+)", text)
        if ports:
            return proc, int(ports[0])
        if role not in ("all", "relay") and "minisentry roles:" in text:
            return proc, None
        time.sleep(0.1)
    raise SystemExit(f"{role} did not start:\n{log.read_text()[-2000:]}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stored(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


def run_setup(name: str, bodies: list[bytes], args: argparse.Namespace) -> dict:
    label, roles = SETUPS[name]
    work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{name}-"))
    db = work / "minisentry.db"
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    raw = {"server": {"host": "127.0.0.1", "port": 0}, "storage": {"path": str(db)},
           "stages": {"drain_timeout": 5.0, "process_workers": 0},
           "projects": [{"id": 1, "slug": "bench", "keys": [DEFAULT_KEY]}]}
    if name != "memory":
        raw["channels"] = {"backend": "kafka", "capacity": 1024}
        raw["kafka"] = {"bootstrap_servers": args.kafka, "topic_prefix": prefix, "group_prefix": prefix,
                        "partitions": 4, "commit_interval": 0.5}
        raw["redis"] = {"url": args.redis, "prefix": prefix}
        raw["backends"] = {"payloads": "redis", "fanout": "redis"}
    config = write_config(work / "minisentry.toml", raw)
    procs = []
    port = None
    try:
        for index, role in enumerate(roles):
            proc, bound = _start(config, role, work / f"{role}-{index}.log")
            procs.append(proc)
            port = bound or port
        url = f"http://127.0.0.1:{port}/api/1/envelope/"
        headers = request_headers()
        statuses: dict[int, int] = {}
        lock = threading.Lock()

        def send(chunk: list[bytes]) -> None:
            with httpx.Client(timeout=60) as client:
                for body in chunk:
                    status = client.post(url, content=body, headers=headers).status_code
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        with ThreadPoolExecutor(args.senders) as pool:
            list(pool.map(send, [bodies[i::args.senders] for i in range(args.senders)]))
        answered = time.perf_counter() - started
        accepted = statuses.get(200, 0)
        deadline = time.monotonic() + 600
        while _stored(db) < accepted and time.monotonic() < deadline:
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        stored = _stored(db)
        cpu: dict[str, float] = {}
        for role, proc in zip(roles, procs):
            cpu[role] = round(cpu.get(role, 0.0) + _cpu_seconds(proc.pid), 1)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    return {"setup": label, "events": len(bodies), "accepted": accepted, "stored": stored,
            "accepted_per_s": round(accepted / answered), "stored_per_s": round(stored / elapsed),
            "statuses": statuses, "cpu_seconds": cpu, "elapsed": round(elapsed, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--setups", default="memory,kafka1,kafka2")
    parser.add_argument("--kafka", default=_lookup("MINISENTRY_TEST_KAFKA_BOOTSTRAP"))
    parser.add_argument("--redis", default=_lookup("MINISENTRY_TEST_REDIS_URL"))
    args = parser.parse_args(argv)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if any(s != "memory" for s in setups) and not (args.kafka and args.redis):
        parser.error("Kafka and Redis needed: run scripts/services.sh start, or pass --kafka and --redis")
    bodies = make_bodies(args.events)
    results = [run_setup(name, bodies, args) for name in setups]
    print(f"{'setup':<28} {'accepted/s':>11} {'stored/s':>9}  stored/sent  CPU seconds by role (wall {'s'})")
    for r in results:
        cpu = ", ".join(f"{role} {seconds}" for role, seconds in r["cpu_seconds"].items())
        print(f"{r['setup']:<28} {r['accepted_per_s']:>11} {r['stored_per_s']:>9}  {r['stored']}/{r['events']}"
              f"  {cpu} ({r['elapsed']})")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
