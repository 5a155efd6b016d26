"""SqliteStore's kill-switch table: values round-trip, and files of schema version 1 gain the table."""

from __future__ import annotations

import sqlite3

import pytest

from minisentry.backends.sqlite import _SCHEMA_VERSION, SqliteStore
from minisentry.errors import StorageError


@pytest.fixture
def path(tmp_path):
    return tmp_path / "store.sqlite"


def user_version(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def make_version_1_file(path) -> None:
    """A file as the previous version created it: the current schema without the killswitches table."""
    SqliteStore(path).open().close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE killswitches")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()


def test_values_round_trip_and_overwrite(path):
    with SqliteStore(path) as store:
        assert store.killswitch_values() == {}
        store.set_killswitch("drop_before_parsing", [{"project_id": 1}])
        store.set_killswitch("skip_processing", [{"platform": "native", "has_attachments": True}])
        store.set_killswitch("drop_before_parsing", [{"project_id": 2}, {"project_id": 3}])
    with SqliteStore(path, readonly=True) as reader:
        assert reader.killswitch_values() == {
            "drop_before_parsing": [{"project_id": 2}, {"project_id": 3}],
            "skip_processing": [{"platform": "native", "has_attachments": True}],
        }
    with SqliteStore(path) as store:
        store.set_killswitch("skip_processing", [])
        assert store.killswitch_values()["skip_processing"] == []


def test_a_version_1_file_gains_the_table_on_open(path):
    make_version_1_file(path)
    with SqliteStore(path) as store:
        store.set_killswitch("drop_before_save", [{"level": "info"}])
        assert store.killswitch_values() == {"drop_before_save": [{"level": "info"}]}
    assert user_version(path) == _SCHEMA_VERSION


def test_a_reader_of_a_version_1_file_sees_no_switches(path):
    make_version_1_file(path)
    with SqliteStore(path, readonly=True) as reader:
        assert reader.killswitch_values() == {}
        with pytest.raises(StorageError):
            reader.set_killswitch("drop_before_save", [])


def test_a_value_that_is_not_json_is_a_storage_error(path):
    with SqliteStore(path) as store:
        store._db().execute("INSERT INTO killswitches(name, value, updated) VALUES ('x', '[', 0)")
        with pytest.raises(StorageError, match="kill-switch value is not JSON"):
            store.killswitch_values()
