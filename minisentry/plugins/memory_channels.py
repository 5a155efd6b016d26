"""Registers the in-memory channel backend as ``memory``."""

from ..backends.memory import MemoryChannel
from ..hookspecs import hookimpl


class MemoryChannels:
    """Channel backend ``memory``: bounded anyio memory streams inside one process."""

    name = "memory"

    def __call__(self, name: str, capacity: int) -> MemoryChannel:
        return MemoryChannel(name, capacity)


@hookimpl
def minisentry_register_channel_backends():
    return [MemoryChannels()]
