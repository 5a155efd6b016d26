"""Registers the SQLite event store as ``sqlite``."""

from ..backends.sqlite import SqliteStore
from ..hookspecs import hookimpl


class SqliteStores:
    """Event store ``sqlite``: one SQLite file at ``[storage] path``."""

    name = "sqlite"

    def open(self, config, readonly: bool = False) -> SqliteStore:
        return SqliteStore(config.storage.path, readonly=readonly).open()


@hookimpl
def minisentry_register_stores():
    return [SqliteStores()]
