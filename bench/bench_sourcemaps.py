"""JavaScript symbolication time: the first (cold) event of a release against later (hot) ones.

Builds a large minified bundle with the real esbuild (``--functions`` functions, each throwing from
its own line), injects a debug id with the real sentry-cli, stores it with the artifact store (as
``minisentry sourcemaps upload`` does), then symbolicates ``--events`` events of ``--frames``
frames each through the JavaScript symbolicator, by debug id and by release URL. The cold event
parses the map and the minified source; later ones hit the caches. Prints milliseconds per event
side by side and one JSON line.

Run: ``python bench/bench_sourcemaps.py [--functions 3000] [--events 50] [--frames 20]``
(needs node/npm: the pinned esbuild is installed into ~/.cache/minisentry/npm like the e2e tests).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisentry.artifacts import ArtifactStore  # noqa: E402
from minisentry.bundle_format import build_bundle  # noqa: E402
from minisentry.cli_sourcemaps import _files  # noqa: E402
from minisentry.config_sourcemaps import SourcemapsConfig  # noqa: E402
from minisentry.jssymbolicate import JavaScriptSymbolicator  # noqa: E402
from minisentry.messages import EventMessage  # noqa: E402
from tests.e2e.npm_tools import npm_root  # noqa: E402


def build(folder: Path, functions: int) -> tuple[Path, list[tuple[int, int]]]:
    lines = []
    for index in range(functions):
        lines.append(f"function handler{index}(input) {{\n  if (input !== {index}) {{\n"
                     f"    throw new Error(\"marker{index}\");\n  }}\n  return input;\n}}")
    lines.append("module.exports = { " + ", ".join(f"handler{i}" for i in range(functions)) + " };")
    (folder / "app.js").write_text("\n".join(lines) + "\n")
    root = npm_root()
    subprocess.run([str(root / "node_modules/.bin/esbuild"), "app.js", "--bundle", "--minify", "--sourcemap",
                    "--platform=node", "--format=cjs", "--outfile=dist/bundle.js", "--log-level=warning"],
                   cwd=folder, check=True)
    cli = shutil.which("sentry-cli", path=str(Path(sys.executable).parent)) or "sentry-cli"
    subprocess.run([cli, "sourcemaps", "inject", "dist"], cwd=folder, check=True, capture_output=True)
    minified = (folder / "dist/bundle.js").read_text().splitlines()
    positions = []
    for index in range(functions):
        marker = f'"marker{index}"'
        for line_no, line in enumerate(minified):
            column = line.find(marker)
            if column >= 0:
                positions.append((line_no + 1, line.rfind("throw", 0, column) + 1))
                break
    return folder / "dist", positions


def event(abs_path: str, debug_id: str | None, positions: list[tuple[int, int]], frames: int, rng: random.Random,
          release: str) -> bytes:
    chosen = rng.sample(positions, frames)
    data = {"platform": "node", "release": release,
            "exception": {"values": [{"type": "Error", "value": "x", "stacktrace": {"frames": [
                {"abs_path": abs_path, "filename": abs_path, "lineno": line, "colno": column, "function": "n",
                 "in_app": True} for line, column in chosen]}}]}}
    if debug_id:
        data["debug_meta"] = {"images": [{"type": "sourcemap", "code_file": abs_path, "debug_id": debug_id}]}
    return orjson.dumps(data)


async def measure(store: ArtifactStore, payloads: list[bytes]) -> list[float]:
    symbolicator = JavaScriptSymbolicator(store, None, cache_bytes=512 * 1024 * 1024, negative_ttl=60,
                                          context_lines=5)
    times = []
    for index, payload in enumerate(payloads):
        message = EventMessage(1, f"{index:032x}", "event", time.time(), payload)
        started = time.perf_counter()
        await symbolicator.symbolicate(message)
        times.append((time.perf_counter() - started) * 1000)
        assert not message.errors, message.errors
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functions", type=int, default=3000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dist, positions = build(folder, args.functions)
        files = _files(dist, "~/", 1 << 30)
        debug_id = next(h["debug-id"] for _, kind, h, _ in files if kind == "source_map")
        store = ArtifactStore(SourcemapsConfig(path=folder / "artifacts")).open()
        store.add_bundle(build_bundle(files), [1], "bench@1", None)
        sizes = {url: len(data) for url, _, _, data in files}
        abs_path = str(dist / "bundle.js")
        rng = random.Random(7)
        results = {}
        for name, image in (("debug id", debug_id), ("release", None)):
            payloads = [event(abs_path, image, positions, args.frames, rng, "bench@1") for _ in range(args.events)]
            times = anyio.run(measure, store, payloads)
            results[name] = {"cold_ms": round(times[0], 2), "hot_p50_ms": round(statistics.median(times[1:]), 3),
                             "hot_max_ms": round(max(times[1:]), 3)}
    print(f"bundle: {sizes['~/bundle.js']:,} bytes minified, {sizes['~/bundle.js.map']:,} bytes of map; "
          f"{args.events} events x {args.frames} frames")
    print(f"{'lookup':<10} {'cold (1st event)':>18} {'hot p50':>10} {'hot max':>10} {'cold/hot':>9}")
    for name, row in results.items():
        print(f"{name:<10} {row['cold_ms']:>15.2f} ms {row['hot_p50_ms']:>7.3f} ms {row['hot_max_ms']:>7.3f} ms "
              f"{row['cold_ms'] / row['hot_p50_ms']:>8.0f}x")
    print(json.dumps({"functions": args.functions, "events": args.events, "frames": args.frames, **results}))


if __name__ == "__main__":
    main()
