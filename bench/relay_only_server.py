"""minisentry's front door alone: the real HttpServer + Relay, with the pipeline behind it cut off.

Every accepted envelope goes into a real memory channel whose consumer acknowledges it at once, so
the figure is exactly the cost of minisentry's accept path (HTTP parsing, auth, streaming decode
with limits, envelope parsing, per-item checks, the channel hand-off) — the part the floor server
(`floor_server.py`) is the minimum of. Compare the two with
``python bench/bench_frontdoor.py --servers floor,minisentry-relay``.

Run: ``python bench/relay_only_server.py --port P --key KEY [--backend trio|asyncio]``; prints
``READY <port>`` once listening and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisentry.backends.memory import MemoryChannel  # noqa: E402
from minisentry.channels import receive_batch  # noqa: E402
from minisentry.config import config_from_dict  # noqa: E402
from minisentry.httpserver import HttpLimits, HttpServer  # noqa: E402
from minisentry.outcomes import OutcomeAggregator  # noqa: E402
from minisentry.projects import ProjectKeys  # noqa: E402
from minisentry.stages.relay import Relay  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    config = config_from_dict({"projects": [{"id": args.project, "slug": "bench", "keys": [args.key]}]})
    keys = ProjectKeys(lambda: {args.key: (args.project, True)})
    keys.reload()
    relay = Relay(config, keys, OutcomeAggregator(), api=None)
    channel = MemoryChannel("ingest", config.channels.capacity)
    relay.sender = channel.sender()
    receiver = channel.receiver()
    await channel.close_originals()
    server = HttpServer(relay, HttpLimits())

    async def sink() -> None:
        # Drains bursts, like the ingest stage does.
        while batch := await receive_batch(receiver, 64):
            for delivery in batch:
                delivery.ack()

    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sink)
            port = await tg.start(server.serve, "127.0.0.1", args.port)
            relay.ready = True
            print(f"READY {port}", flush=True)
            async for _ in signals:
                break
            server.shutdown()
            await relay.sender.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--project", type=int, default=1)
    parser.add_argument("--key", default="0123456789abcdef0123456789abcdef")
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    args = parser.parse_args()
    anyio.run(main, args, backend=args.backend)
