"""minisentry: Sentry's event-ingestion pipeline as one embeddable Python program.

Embed it::

    import anyio, minisentry

    async def main():
        config = minisentry.load_config("minisentry.toml")
        async with minisentry.Pipeline(config) as pipeline:   # http=False to skip the front door
            await anyio.sleep_forever()
"""

import os

# sentry-relay turns on Rust backtraces (RUST_BACKTRACE=1) when imported, and Relay then captures
# one for every error it reports: ~70 ms of CPU for each malformed event payload, which would let
# a flood of junk events starve the workers. The error messages we keep do not need them; someone
# debugging Relay can still set RUST_LIB_BACKTRACE=1. Set before anything calls into Relay, since
# Rust reads it once.
os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

from . import errors  # noqa: E402
from .app import Pipeline  # noqa: E402
from .config import Config, config_from_dict, load_config  # noqa: E402
from .envelope import Envelope, Item, parse_envelope, serialize_envelope  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .outcomes import Outcome  # noqa: E402

__all__ = [
    "Pipeline",
    "Config",
    "load_config",
    "config_from_dict",
    "Envelope",
    "Item",
    "parse_envelope",
    "serialize_envelope",
    "hookimpl",
    "Outcome",
    "errors",
]
