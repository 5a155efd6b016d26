"""Side by side: the "floor" envelope server vs the real minisentry server, under the same load.

What it measures, for each server, median of ``--repeat`` runs (each run starts a fresh server):

- accepted requests/s (200s), p50/p99 latency, non-200 and connection-error counts, from
  ``bench/loadgen.py`` replaying real sentry-sdk envelopes (``bench/envelopes.py``, unique event
  ids, built before any timed run) over ``--concurrency`` keep-alive connections;
- server CPU per accepted event (utime+stime of the server process and its descendants, from
  ``/proc/<pid>/stat``, from "ready" to "done"), and peak RSS (``VmHWM``; descendants summed
  separately);
- ``events_per_cpu_s`` = 1 / CPU per event: what one core could accept; steadier than req/s when
  other work shares the machine;
- noise: the share of the server's core that was busy, and busy with anything but the server
  (other processes on a shared machine, interrupts; from ``/proc/stat``); high values mean the run
  was disturbed;
- minisentry only: time until every accepted event is in its SQLite store (polling
  ``SELECT count(*) FROM events`` read-only; a missing file or table counts as 0), as the lag after
  the load ended and as end-to-end stored events/s; the server CPU for minisentry is counted until
  everything is stored, so it includes processing and storage, not only the front door. Before
  the timed run minisentry gets ``--warmup`` events (default 1000) and the driver waits until they
  are stored, so the figures describe the steady state rather than startup (process workers
  starting, caches and SQLite pages filling).

Servers run as subprocesses pinned to ``--server-cpu`` (default 0) with ``taskset``; this process
(the load generator) pins itself to ``--client-cpu`` (default 1). Runs of the servers alternate
(floor, minisentry, floor, ...) so that drift of the machine hits both alike, and each run first
waits (``--quiet-wait``, bounded) until both CPUs are idle, since other work on a shared 2-core
machine skews everything; each run records how busy the server's core was with other work. The
floor is ``bench/floor_server.py`` (httptools over anyio, same ``--backend``); minisentry is
started as ``python -m minisentry --config <tmp>/minisentry.toml serve --port P`` with
``[server] backend`` set from ``--backend`` and a fresh SQLite file, and is ready when
``GET /api/relay/healthcheck/ready/`` answers 200. A server that exits early is reported with the
tail of its stderr.

Run (from the repository root)::

    python bench/bench_frontdoor.py [--requests 20000] [--concurrency 16] [--backend trio|asyncio] \
        [--repeat 3] [--servers floor,minisentry] [--store-timeout 120]

``--servers`` also accepts ``floor-trivial`` (reads the body and answers 200 without decoding: the
ceiling of the HTTP layer), ``floor-protocol`` (the floor's work on a plain asyncio Protocol,
without anyio) and ``nginx`` (if installed: ``return 200`` in C, to see the load generator's own
ceiling; ``loadgen CPU util`` near 1.0 there means the client is the limit).
It prints a table, the ratios floor/minisentry, and one JSON line with every figure (last line).
Absolute numbers depend on the machine; compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from envelopes import DEFAULT_KEY, make_bodies, request_headers  # noqa: E402
from loadgen import run_load  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROJECT_ID = 1


class ServerFailed(RuntimeError):
    """The server under test could not start, or exited while being measured."""


# --- /proc helpers --------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1] = ppid
    out, todo = [], [pid]
    while todo and len(out) < 10_000:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(CPU seconds of ``pid``, CPU seconds of its live descendants): utime + stime."""

    def one(p: int) -> float:
        f = _stat_fields(p)
        # After the ')': state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime
        return (int(f[11]) + int(f[12])) / CLK_TCK if f else 0.0

    return one(pid), sum(one(c) for c in _descendants(pid))


def peak_rss_kb(pid: int) -> tuple[int, int]:
    """(VmHWM of ``pid``, sum of VmHWM of its live descendants), in KiB."""

    def one(p: int) -> int:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
        return 0

    return one(pid), sum(one(c) for c in _descendants(pid))


def cpu_jiffies(cpu: int) -> tuple[int, int, int]:
    """(busy, total, steal) jiffies of one CPU from /proc/stat: all processes, and VM steal."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
            steal = v[7] if len(v) > 7 else 0
            total = sum(v[:8])
            return total - idle, total, steal
    return 0, 0, 0


def wait_quiet(cpus: list[int], threshold: float, max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until every CPU in ``cpus`` is busy less than ``threshold``
    over a 0.5 s window; return the last busy share seen (other work on a shared machine)."""
    deadline = time.monotonic() + max_wait
    while True:
        before = [cpu_jiffies(c) for c in cpus]
        time.sleep(0.5)
        after = [cpu_jiffies(c) for c in cpus]
        share = max((a[0] - b[0]) / max(a[1] - b[1], 1) for a, b in zip(after, before, strict=True))
        if share <= threshold or time.monotonic() >= deadline:
            return round(share, 3)


# --- servers --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess pinned to one CPU, with stdout/stderr captured to files."""

    def __init__(
        self, name: str, argv: list[str], workdir: Path, cpu: int | None, env: dict[str, str]
    ):
        self.name = name
        self.workdir = workdir
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        if cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(cpu), *argv]
        self.argv = argv
        self.cpu = cpu
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self) -> None:
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            cwd=str(REPO_ROOT),
            env=self.env,
            start_new_session=True,
        )
        if self.cpu is not None and not shutil.which("taskset"):
            os.sched_setaffinity(self.proc.pid, {self.cpu})

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr_tail(self, lines: int = 25) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def check_alive(self, what: str) -> None:
        assert self.proc is not None
        rc = self.proc.poll()
        if rc is not None:
            raise ServerFailed(
                f"{self.name} exited with code {rc} {what}\n"
                f"command: {' '.join(self.argv)}\n--- stderr tail ---\n{self.stderr_tail()}"
            )

    def wait_ready_line(self, timeout: float) -> int:
        """Wait for ``READY <port>`` on stdout; return the port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive("before printing READY")
            text = self.stdout_path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("READY "):
                    self.port = int(line.split()[1])
                    return self.port
            time.sleep(0.02)
        raise ServerFailed(
            f"{self.name} printed no READY line within {timeout}s\n{self.stderr_tail()}"
        )

    def wait_healthy(self, port: int, timeout: float) -> None:
        """Wait until ``GET /api/relay/healthcheck/ready/`` answers 200."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_alive("before becoming ready")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
                try:
                    conn.request("GET", "/api/relay/healthcheck/ready/")
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 200:
                        self.port = port
                        return
                    last = f"status {resp.status}"
                finally:
                    conn.close()
            except OSError as exc:
                last = str(exc)
            time.sleep(0.05)
        raise ServerFailed(
            f"{self.name} not ready within {timeout}s (last: {last})\n--- stderr tail ---\n"
            f"{self.stderr_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._out.close()
        self._err.close()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_relay_only(args: argparse.Namespace, workdir: Path) -> Server:
    """minisentry's own front door (HttpServer + Relay) with the stages behind it cut off."""
    argv = [args.python, str(BENCH_DIR / "relay_only_server.py"), "--port", "0", "--backend", args.backend,
            "--project", str(PROJECT_ID), "--key", args.key]
    server = Server("minisentry-relay", argv, workdir, args.server_cpu, _child_env())
    server.start()
    server.wait_ready_line(args.ready_timeout)
    return server


def start_floor(kind: str, args: argparse.Namespace, workdir: Path) -> Server:
    backend = "asyncio-protocol" if kind == "floor-protocol" else args.backend
    argv = [
        args.python,
        str(BENCH_DIR / "floor_server.py"),
        "--port",
        "0",
        "--backend",
        backend,
        "--project",
        str(PROJECT_ID),
        "--key",
        args.key,
    ]
    if kind == "floor-trivial":
        argv.append("--trivial")
    server = Server(kind, argv, workdir, args.server_cpu, _child_env())
    server.start()
    server.wait_ready_line(args.ready_timeout)
    return server


NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process off;
error_log {dir}/nginx-error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir};
  client_body_buffer_size 1m;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 '{{}}'; }}
  }}
}}
"""


def start_nginx(args: argparse.Namespace, workdir: Path) -> Server:
    """nginx answering 200 to everything: a C server, to find the load generator's own ceiling."""
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if exe is None:
        raise ServerFailed("nginx is not installed (apt-get install nginx-light); it is optional")
    port = _free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
    server = Server(
        "nginx", [exe, "-c", str(conf), "-p", str(workdir)], workdir, args.server_cpu, _child_env()
    )
    server.start()
    server.wait_healthy(port, args.ready_timeout)
    return server


def minisentry_config(port: int, db: Path, backend: str, key: str, process_workers: int = 0) -> str:
    return (
        "[server]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'backend = "{backend}"\n\n'
        "[storage]\n"
        f"path = {json.dumps(str(db))}\n\n"
        "[stages]\n"
        f"process_workers = {process_workers}\n\n"
        "[[projects]]\n"
        f"id = {PROJECT_ID}\n"
        'slug = "bench"\n'
        f'keys = ["{key}"]\n'
    )


def start_minisentry(args: argparse.Namespace, workdir: Path) -> tuple[Server, Path]:
    port = _free_port()
    db = workdir / "bench.sqlite"
    cfg = workdir / "minisentry.toml"
    cfg.write_text(minisentry_config(port, db, args.backend, args.key, args.process_workers))
    argv = [args.python, "-m", "minisentry", "--config", str(cfg), "serve", "--port", str(port)]
    env = _child_env()
    if not args.with_plugins:
        # Measure minisentry itself: installed third-party plugins (a per-event processor costs an
        # extra JSON round trip per event) stay out unless asked for.
        env["MINISENTRY_LOAD_PLUGINS"] = ""
    server = Server("minisentry", argv, workdir, args.server_cpu, env)
    server.start()
    server.wait_healthy(port, args.ready_timeout)
    return server, db


def stored_count(db: Path) -> int | None:
    """``SELECT count(*) FROM events``, read-only: 0 if file or table is missing, None if busy."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.OperationalError:
        return 0
    try:
        return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError as exc:
        return 0 if "no such table" in str(exc) else None
    finally:
        con.close()


def warm_up(server: "Server", db: Path, args: argparse.Namespace, headers: dict[str, str]) -> int:
    """Send ``--warmup`` events (not measured) and wait until they are stored; return how many.

    The figures then describe a server in its steady state: process workers started, caches and
    SQLite pages warm. Without it their startup (~0.5 s CPU per worker process) is charged to the run.
    """
    bodies = make_bodies(args.warmup, args.key, PROJECT_ID)
    load = asyncio.run(run_load("127.0.0.1", server.port, bodies, args.concurrency, requests=len(bodies),
                                project_id=PROJECT_ID, public_key=args.key, headers=headers))
    if wait_stored(server, db, load["accepted"], time.perf_counter() + args.store_timeout, "the warm-up") \
            < load["accepted"]:
        raise ServerFailed(f"warm-up: {load['accepted']} events not stored in {args.store_timeout}s")
    return load["accepted"]


def wait_stored(server: "Server", db: Path, expected: int, deadline: float, during: str) -> int:
    """Poll the store until it holds ``expected`` events or ``deadline`` (perf_counter) passes;
    return the last count. Raises ServerFailed if the server exits meanwhile."""
    count = 0
    while True:
        c = stored_count(db)
        if c is not None:
            count = c
        if count >= expected or time.perf_counter() >= deadline:
            return count
        server.check_alive(f"during {during}")
        time.sleep(0.02)


# --- one run --------------------------------------------------------------------------------------


def run_once(
    kind: str, args: argparse.Namespace, bodies: list[bytes], headers: dict[str, str]
) -> dict[str, Any]:
    idle_busy = None
    if args.quiet_wait > 0 and args.server_cpu is not None:
        idle_busy = wait_quiet(
            [args.server_cpu, args.client_cpu], args.quiet_threshold, args.quiet_wait
        )
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        workdir = Path(tmp)
        db = None
        if kind == "minisentry":
            server, db = start_minisentry(args, workdir)
        elif kind == "minisentry-relay":
            server = start_relay_only(args, workdir)
        elif kind == "nginx":
            server = start_nginx(args, workdir)
        else:
            server = start_floor(kind, args, workdir)
        try:
            warmed = 0
            if args.warmup and kind == "minisentry":
                warmed = warm_up(server, db, args, headers)
            cpu0, cpu0_children = cpu_seconds(server.pid)
            core0 = cpu_jiffies(args.server_cpu) if args.server_cpu is not None else None
            try:
                load = asyncio.run(
                    run_load(
                        "127.0.0.1",
                        server.port,
                        bodies,
                        args.concurrency,
                        requests=args.requests,
                        project_id=PROJECT_ID,
                        public_key=args.key,
                        headers=headers,
                    )
                )
            except OSError as exc:
                server.check_alive("during the load")
                raise ServerFailed(
                    f"{kind}: cannot load it: {exc}\n{server.stderr_tail()}"
                ) from exc
            t_load_end = time.perf_counter()
            server.check_alive("during the load")
            result: dict[str, Any] = {"server": kind, **load, "busy_before_run": idle_busy}
            if db is not None:
                expected = load["accepted"] + warmed
                count = wait_stored(server, db, expected, t_load_end + args.store_timeout, "storing the events")
                lag = time.perf_counter() - t_load_end if count >= expected else None
                count -= warmed  # the measured run's events only
                result["stored"] = count
                result["store_complete"] = lag is not None
                result["store_lag_s"] = round(lag, 3) if lag is not None else None
                if lag is not None:
                    total = load["elapsed_s"] + lag
                    result["time_to_all_stored_s"] = round(total, 3)
                    result["stored_per_s"] = round(count / total, 1) if total > 0 else None
                else:
                    result["time_to_all_stored_s"] = None
                    result["stored_per_s"] = None
            cpu1, cpu1_children = cpu_seconds(server.pid)
            if core0 is not None:
                # How busy the server's CPU was with anything but the server (other processes,
                # interrupts) and how much the hypervisor stole: noise indicators, 0..1.
                busy1, total1, steal1 = cpu_jiffies(args.server_cpu)
                span = max(total1 - core0[1], 1)
                server_j = ((cpu1 - cpu0) + max(cpu1_children - cpu0_children, 0.0)) * CLK_TCK
                result["server_cpu_busy_share"] = round((busy1 - core0[0]) / span, 3)
                result["server_cpu_other_share"] = round(
                    max(busy1 - core0[0] - server_j, 0) / span, 3
                )
                result["server_cpu_steal_share"] = round((steal1 - core0[2]) / span, 3)
            hwm, hwm_children = peak_rss_kb(server.pid)
            server.check_alive("after the load")
            accepted = max(load["accepted"], 1)
            result["server_cpu_s"] = round(cpu1 - cpu0, 3)
            result["server_children_cpu_s"] = round(max(cpu1_children - cpu0_children, 0.0), 3)
            result["server_cpu_ms_per_event"] = round(
                ((cpu1 - cpu0) + max(cpu1_children - cpu0_children, 0.0)) * 1000 / accepted, 4
            )
            # Less sensitive to a noisy shared machine than req/s: events one core could take.
            cpu_ms = result["server_cpu_ms_per_event"]
            result["events_per_cpu_s"] = round(1000 / cpu_ms, 1) if cpu_ms > 0 else None
            result["peak_rss_mb"] = round(hwm / 1024, 1)
            result["children_peak_rss_mb"] = round(hwm_children / 1024, 1)
            return result
        finally:
            server.stop()


# --- report ---------------------------------------------------------------------------------------

ROWS = [
    ("accepted_per_s", "accepted req/s", "{:,.0f}"),
    ("best_accepted_per_s", "  best run req/s", "{:,.0f}"),
    ("p50_ms", "p50 latency ms", "{:.2f}"),
    ("p99_ms", "p99 latency ms", "{:.2f}"),
    ("non_200", "non-200 responses", "{:,.0f}"),
    ("errors", "connection errors", "{:,.0f}"),
    ("server_cpu_ms_per_event", "server CPU ms/event", "{:.4f}"),
    ("events_per_cpu_s", "events per server CPU-s", "{:,.0f}"),
    ("peak_rss_mb", "server peak RSS MB", "{:.1f}"),
    ("store_lag_s", "store lag after load s", "{:.3f}"),
    ("time_to_all_stored_s", "time to all stored s", "{:.3f}"),
    ("stored_per_s", "stored events/s end-to-end", "{:,.0f}"),
    ("client_cpu_util", "loadgen CPU util", "{:.2f}"),
    ("server_cpu_busy_share", "server core busy share", "{:.2f}"),
    ("server_cpu_other_share", "server core used by others", "{:.2f}"),
]


# Rows where floor/minisentry means nothing (load generator and noise indicators).
NO_RATIO = {"client_cpu_util", "server_cpu_busy_share", "server_cpu_other_share"}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in runs:
        r["non_200"] = sum(v for k, v in r["status"].items() if k != "200")
    keys = {
        k
        for r in runs
        for k, v in r.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    for k in sorted(keys):
        vals = [
            r[k]
            for r in runs
            if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
        ]
        if len(vals) == len(runs):
            out[k] = round(statistics.median(vals), 4)
        else:
            out[k] = None  # missing in some run (e.g. storage never completed)
    status: dict[str, list[int]] = {}
    for r in runs:
        for k in r["status"]:
            status.setdefault(k, [])
    for k in status:
        status[k] = [r["status"].get(k, 0) for r in runs]
    out["status"] = {k: statistics.median(v) for k, v in sorted(status.items())}
    out["runs"] = len(runs)
    # On a shared machine the fastest run is the least disturbed one; kept beside the median.
    out["best_accepted_per_s"] = max(r["accepted_per_s"] for r in runs)
    return out


def _fmt(fmt: str, v: Any) -> str:
    if v is None:
        return "-"
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def print_table(medians: dict[str, dict[str, Any]], ratios: dict[str, dict[str, float | None]]) -> None:
    names = list(medians)
    header = ["metric", *names] + [f"floor/{name}" for name in ratios]
    rows = []
    for key, label, fmt in ROWS:
        if all(medians[n].get(key) is None for n in names):
            continue
        row = [label] + [_fmt(fmt, medians[n].get(key)) for n in names]
        row += [_fmt("{:.2f}", per_key.get(key)) for per_key in ratios.values()]
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    p.add_argument("--repeat", type=int, default=3, help="runs per server; the median is reported")
    p.add_argument(
        "--servers",
        default="floor,minisentry",
        help="comma list of floor, minisentry, minisentry-relay, floor-trivial, floor-protocol, nginx",
    )
    p.add_argument("--process-workers", type=int, default=0,
                   help="minisentry's [stages] process_workers (0: normalize in a thread of the server)")
    p.add_argument("--with-plugins", action="store_true",
                   help="let minisentry load the installed third-party plugins (default: none, MINISENTRY_LOAD_PLUGINS=)")
    p.add_argument("--warmup", type=int, default=1000,
                   help="minisentry: events sent and stored before the measured run (0: none)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--key", default=DEFAULT_KEY)
    p.add_argument(
        "--store-timeout",
        type=float,
        default=120.0,
        help="seconds to wait after the load for minisentry to store every event",
    )
    p.add_argument("--ready-timeout", type=float, default=60.0)
    p.add_argument("--python", default=sys.executable, help="interpreter for the servers")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each run, wait up to this many seconds for both CPUs to be idle "
        "(shared machines); 0 = don't wait",
    )
    p.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.10,
        help="busy share under which a CPU counts as idle for --quiet-wait",
    )
    args = p.parse_args(argv)

    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    for k in kinds:
        if k not in ("floor", "minisentry", "minisentry-relay", "floor-trivial", "floor-protocol", "nginx"):
            p.error(f"unknown server {k!r}")
    if args.repeat < 1 or args.requests < 1 or args.concurrency < 1:
        p.error("--repeat, --requests and --concurrency must be >= 1")

    ncpu = os.cpu_count() or 1
    if ncpu >= 2 and args.server_cpu != args.client_cpu:
        os.sched_setaffinity(0, {args.client_cpu})
    else:
        print(f"note: {ncpu} CPU(s); server and load generator share CPUs", file=sys.stderr)
        args.server_cpu = None

    t0 = time.perf_counter()
    headers = request_headers(args.key, PROJECT_ID)
    bodies = make_bodies(args.requests, args.key, PROJECT_ID)
    print(
        f"built {len(bodies)} bodies (avg {sum(map(len, bodies)) / len(bodies):.0f} B compressed) "
        f"in {time.perf_counter() - t0:.1f}s; {args.repeat} run(s) per server, "
        f"{args.requests} requests at concurrency {args.concurrency}, backend {args.backend}",
        file=sys.stderr,
    )

    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    failures: dict[str, str] = {}
    for i in range(args.repeat):
        for kind in kinds:
            if kind in failures:
                continue
            try:
                r = run_once(kind, args, bodies, headers)
            except ServerFailed as exc:
                failures[kind] = str(exc)
                print(f"[{kind}] FAILED: {exc}", file=sys.stderr)
                continue
            runs[kind].append(r)
            extra = ""
            if kind == "minisentry":
                extra = f", stored {r['stored']}/{r['accepted']} lag {r['store_lag_s']}s"
            if r.get("server_cpu_other_share") is not None:
                extra += f", core used by others {r['server_cpu_other_share']:.0%}"
            print(
                f"[{kind} run {i + 1}] {r['accepted_per_s']:,.0f} req/s accepted, "
                f"status {r['status']}, p99 {r['p99_ms']} ms, "
                f"cpu {r['server_cpu_ms_per_event']} ms/event{extra}",
                file=sys.stderr,
            )

    medians = {k: _median(v) for k, v in runs.items() if v}
    # floor / each minisentry variant, per metric.
    ratios: dict[str, dict[str, float | None]] = {}
    for name in medians:
        if "floor" not in medians or not name.startswith("minisentry"):
            continue
        per_key = ratios[name] = {}
        for key, *_ in ROWS:
            if key in NO_RATIO:
                continue
            a, b = medians["floor"].get(key), medians[name].get(key)
            per_key[key] = (
                round(a / b, 3)
                if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b
                else None
            )
    if medians:
        print()
        print_table(medians, ratios)
        print()
    for kind, msg in failures.items():
        print(f"{kind}: FAILED\n{msg}\n")
    print(
        json.dumps(
            {
                "config": {
                    "requests": args.requests,
                    "concurrency": args.concurrency,
                    "backend": args.backend,
                    "repeat": args.repeat,
                    "server_cpu": args.server_cpu,
                    "client_cpu": args.client_cpu,
                    "body_bytes_avg": round(sum(map(len, bodies)) / len(bodies), 1),
                },
                "median": medians,
                "ratio_floor_over": ratios or None,
                "runs": runs,
                "failures": failures or None,
            }
        ),
        flush=True,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
