"""minisentry: Sentry's event-ingestion pipeline as one embeddable Python program.

Embed it::

    import anyio, minisentry

    async def main():
        config = minisentry.load_config("minisentry.toml")
        async with minisentry.Pipeline(config) as pipeline:   # http=False to skip the front door
            await anyio.sleep_forever()
"""

from . import errors
from .app import Pipeline
from .config import Config, config_from_dict, load_config
from .envelope import Envelope, Item, parse_envelope, serialize_envelope
from .hookspecs import hookimpl
from .outcomes import Outcome

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
