"""The on-disk spool: FIFO, limits, expiry, persistence, record format and the drain task.

Ages are injected with ``now=``; "the drain is blocked" is read from the channel's statistics
(``senders_waiting``), never from sleeps. ``GUARD`` bounds waits that only time out when broken.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry import spool as spool_module
from minisentry.backends.memory import MemoryChannel
from minisentry.envelope import Envelope, Item
from minisentry.errors import InvalidEnvelope, PipelineFull, SpoolFull, StorageError
from minisentry.messages import EnvelopeMessage
from minisentry.spool import DiskSpool, decode_envelope_message, drain, encode_envelope_message

from .conftest import KEY

GUARD = 10  # seconds: only ever reached when the behaviour under test is broken


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "relay.sqlite"


@pytest.fixture
def spool(spool_path: Path):
    with DiskSpool(spool_path, max_bytes=1 << 20, max_age=3600) as opened:
        yield opened


def message(n: int, payload: bytes = b'{"message":"hi"}', received: float = 1_700_000_000.0) -> EnvelopeMessage:
    """A relay message numbered ``n`` (in its envelope header) with one event item."""
    return EnvelopeMessage(1, KEY, received, Envelope({"n": n}, [Item({"type": "event"}, payload)]), "10.0.0.1")


def numbers(messages) -> list[int]:
    return [m.envelope.headers["n"] for m in messages]


# -- FIFO and bookkeeping ----------------------------------------------------------------------


def test_peek_returns_oldest_first_without_removing(spool):
    ids = [spool.put(b"record-%d" % i) for i in range(5)]
    assert ids == sorted(ids)
    assert spool.peek(3) == [(ids[i], b"record-%d" % i) for i in range(3)]
    assert spool.peek(100) == [(ids[i], b"record-%d" % i) for i in range(5)]
    assert len(spool) == 5


def test_delete_frees_bytes_and_ignores_unknown_ids(spool):
    ids = [spool.put(b"x" * 10) for _ in range(3)]
    assert spool.size_bytes == 30
    assert spool.delete([ids[0], ids[2], 999_999]) == 2
    assert spool.delete([ids[0]]) == 0
    assert spool.delete([]) == 0
    assert (len(spool), spool.size_bytes) == (1, 10)
    assert spool.peek(10) == [(ids[1], b"x" * 10)]


def test_ids_keep_growing_after_the_spool_empties(spool):
    first = spool.put(b"a")
    spool.delete([first])
    assert len(spool) == 0
    assert spool.put(b"b") > first


def test_binary_records_are_kept_exactly(spool):
    record = bytes(range(256)) + b"\n\x00\n"
    spool.put(record)
    assert spool.peek(1)[0][1] == record


def test_concurrent_puts_from_threads_keep_exact_totals(spool):
    def worker() -> None:
        for _ in range(50):
            spool.put(b"y" * 7)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(spool), spool.size_bytes) == (200, 1400)
    assert len({row_id for row_id, _ in spool.peek(1000)}) == 200


# -- persistence ---------------------------------------------------------------------------------


def test_records_and_totals_survive_close_and_reopen(spool_path):
    with DiskSpool(spool_path, max_bytes=100, max_age=60) as first:
        ids = [first.put(b"r%d" % i) for i in range(4)]
        first.delete([ids[0]])
    with DiskSpool(spool_path, max_bytes=100, max_age=60) as second:
        assert second.peek(10) == [(ids[i], b"r%d" % i) for i in (1, 2, 3)]
        assert (len(second), second.size_bytes) == (3, 6)
        assert second.put(b"r4") > ids[-1]


def test_the_byte_limit_holds_across_a_restart(spool_path):
    with DiskSpool(spool_path, max_bytes=10, max_age=60) as first:
        first.put(b"x" * 8)
    with DiskSpool(spool_path, max_bytes=10, max_age=60) as second:
        with pytest.raises(SpoolFull):
            second.put(b"x" * 3)
        second.put(b"x" * 2)


# -- the byte limit ------------------------------------------------------------------------------


def test_byte_limit_exact_behaviour(spool_path):
    with DiskSpool(spool_path, max_bytes=10, max_age=60, retry_after=7) as spool:
        first = spool.put(b"a" * 4)
        spool.put(b"b" * 6)  # exactly at the limit: fits
        assert spool.size_bytes == 10
        with pytest.raises(SpoolFull) as info:
            spool.put(b"c")
        assert isinstance(info.value, PipelineFull)
        assert (info.value.status, info.value.retry_after) == (429, 7)
        assert (len(spool), spool.size_bytes) == (2, 10)  # the refused put left nothing behind
        spool.delete([first])
        spool.put(b"d" * 4)  # room again after a delete
        with pytest.raises(SpoolFull):
            spool.put(b"e")
        assert [record for _, record in spool.peek(10)] == [b"b" * 6, b"d" * 4]


def test_a_record_larger_than_the_limit_never_fits(spool_path):
    with DiskSpool(spool_path, max_bytes=10, max_age=60) as spool:
        with pytest.raises(SpoolFull):
            spool.put(b"z" * 11)
        spool.put(b"")  # an empty record costs nothing
        assert (len(spool), spool.size_bytes) == (1, 0)


def test_limits_must_be_positive(spool_path):
    with pytest.raises(ValueError):
        DiskSpool(spool_path, max_bytes=0, max_age=60)
    with pytest.raises(ValueError):
        DiskSpool(spool_path, max_bytes=10, max_age=0)


# -- max_age -------------------------------------------------------------------------------------


def test_expire_drops_records_older_than_max_age(spool_path):
    with DiskSpool(spool_path, max_bytes=100, max_age=15) as spool:
        for created in (1000.0, 1010.0, 1020.0):
            spool.put(b"t%d" % created, now=created)
        assert spool.oldest_age(now=1030.0) == 30.0
        assert spool.expire(now=1030.0) == 2
        assert [record for _, record in spool.peek(10)] == [b"t1020"]
        assert (len(spool), spool.size_bytes) == (1, 5)
        assert spool.expire(now=1035.0) == 0  # exactly max_age old: kept
        assert spool.expire(now=1035.5) == 1
        assert spool.oldest_age(now=2000.0) == 0.0


def test_take_expired_returns_the_oldest_up_to_limit(spool_path):
    with DiskSpool(spool_path, max_bytes=100, max_age=10) as spool:
        ids = [spool.put(b"%d" % i, now=100.0 + i) for i in range(5)]
        assert spool.take_expired(2, now=200.0) == [(ids[0], b"0"), (ids[1], b"1")]
        assert spool.take_expired(now=112.5) == [(ids[2], b"2")]
        assert (len(spool), spool.size_bytes) == (2, 2)


def test_oldest_age_is_never_negative(spool):
    spool.put(b"future", now=time.time() + 3600)  # a clock that jumped back
    assert spool.oldest_age() == 0.0


# -- record format -------------------------------------------------------------------------------

_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=20))
_headers = st.dictionaries(st.text(min_size=1, max_size=10), _json_scalar, max_size=4)
_items = st.lists(st.tuples(st.sampled_from(["event", "transaction", "attachment", "weird_type"]), _headers,
                            st.binary(max_size=200)), max_size=5)


@settings(max_examples=200, deadline=None)
@given(project_id=st.integers(1, 2**62), public_key=st.text(max_size=40),
       received=st.floats(allow_nan=False, allow_infinity=False),
       remote_addr=st.one_of(st.none(), st.text(max_size=45)), headers=_headers, items=_items)
def test_encode_decode_round_trip(project_id, public_key, received, remote_addr, headers, items):
    envelope = Envelope(headers, [Item({**extra, "type": kind}, payload) for kind, extra, payload in items])
    original = EnvelopeMessage(project_id, public_key, received, envelope, remote_addr)
    decoded = decode_envelope_message(encode_envelope_message(original))
    assert (decoded.project_id, decoded.public_key, decoded.received, decoded.remote_addr) == (
        project_id, public_key, received, remote_addr)
    assert decoded.envelope.headers == headers
    assert [item.payload for item in decoded.envelope.items] == [payload for _, _, payload in items]
    # serialize_envelope writes an explicit length on every item; nothing else changes.
    assert [{k: v for k, v in item.headers.items() if k != "length"} for item in decoded.envelope.items] == [
        {k: v for k, v in {**extra, "type": kind}.items() if k != "length"} for kind, extra, _ in items]


def test_round_trip_keeps_payload_newlines_and_empty_payloads():
    payloads = [b"a\nb\n", b"", b"\n", b'{"x":1}\n\n']
    envelope = Envelope({"event_id": "a" * 32}, [Item({"type": "attachment"}, p) for p in payloads])
    decoded = decode_envelope_message(encode_envelope_message(EnvelopeMessage(3, KEY, 1.5, envelope)))
    assert [item.payload for item in decoded.envelope.items] == payloads
    assert decoded.remote_addr is None


@pytest.mark.parametrize("record", [b"", b"not json\n{}\n", b'{"v":99,"project_id":1}\n{}\n',
                                    b'{"v":1,"project_id":1}\n{}\n', b'{"v":1}', b"[1]\n{}\n",
                                    b'{"v":1,"project_id":1,"public_key":"k","received":1.0,"remote_addr":null}\n['])
def test_decoding_a_corrupt_record_raises_storage_error(record):
    with pytest.raises(StorageError, match="corrupt spool record"):
        decode_envelope_message(record)


def test_encoding_headers_that_are_not_json_raises_invalid_envelope():
    envelope = Envelope({"when": object()}, [])
    with pytest.raises(InvalidEnvelope):
        encode_envelope_message(EnvelopeMessage(1, KEY, 1.0, envelope))


# -- the file ------------------------------------------------------------------------------------


def test_a_corrupt_file_raises_storage_error_naming_the_path(spool_path):
    spool_path.parent.mkdir(parents=True)
    spool_path.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(StorageError, match=str(spool_path)):
        DiskSpool(spool_path, max_bytes=100, max_age=60).open()


def test_another_sqlite_database_is_refused(tmp_path):
    other = tmp_path / "store.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE events (id INTEGER)")
    conn.close()
    with pytest.raises(StorageError, match=f"{other}.*another SQLite database"):
        DiskSpool(other, max_bytes=100, max_age=60).open()


def test_a_spool_from_a_newer_version_is_refused(spool_path):
    with DiskSpool(spool_path, max_bytes=100, max_age=60):
        pass
    with sqlite3.connect(spool_path) as conn:
        conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        DiskSpool(spool_path, max_bytes=100, max_age=60).open()


def test_a_second_opener_is_refused_while_the_first_holds_the_file(spool_path, monkeypatch):
    monkeypatch.setattr(spool_module, "LOCK_TIMEOUT", 0)
    with DiskSpool(spool_path, max_bytes=100, max_age=60) as first:
        first.put(b"mine")
        with pytest.raises(StorageError, match=str(spool_path)):
            DiskSpool(spool_path, max_bytes=100, max_age=60).open()
    with DiskSpool(spool_path, max_bytes=100, max_age=60) as again:
        assert len(again) == 1


def test_using_a_closed_spool_raises_storage_error(spool_path):
    spool = DiskSpool(spool_path, max_bytes=100, max_age=60)
    with pytest.raises(StorageError, match="not open"):
        spool.put(b"x")
    spool.open().close()
    spool.close()  # idempotent
    with pytest.raises(StorageError, match="not open"):
        spool.peek(1)


# -- drain ---------------------------------------------------------------------------------------


def spool_messages(spool: DiskSpool, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        spool.put(encode_envelope_message(message(n)))


async def wait_until(predicate) -> None:
    """Poll ``predicate`` (state changed by a worker thread) until it holds; GUARD bounds it."""
    with anyio.fail_after(GUARD):
        while not predicate():
            await anyio.sleep(0.001)


async def open_channel(capacity: int):
    """A MemoryChannel with one sender and one receiver clone, originals closed as the pipeline does."""
    channel = MemoryChannel("ingest", capacity)
    sender, receiver = channel.sender(), channel.receiver()
    await channel.close_originals()
    return channel, sender, receiver


async def receive(receiver, count: int) -> list[EnvelopeMessage]:
    messages = []
    with anyio.fail_after(GUARD):
        for _ in range(count):
            delivery = await receiver.receive()
            delivery.ack()
            messages.append(delivery.message)
    return messages


@pytest.mark.anyio
async def test_drain_moves_messages_in_order_and_empties_the_spool(spool):
    spool_messages(spool, 10)
    channel, sender, receiver = await open_channel(100)
    async with sender, receiver, anyio.create_task_group() as tg:
        tg.start_soon(lambda: drain(spool, sender, batch=3))
        assert numbers(await receive(receiver, 10)) == list(range(10))
        await wait_until(lambda: len(spool) == 0)
        assert spool.size_bytes == 0
        tg.cancel_scope.cancel()
    assert channel.statistics().sent == 10


@pytest.mark.anyio
async def test_drain_puts_spooled_messages_after_those_already_in_the_channel(spool):
    spool_messages(spool, 3, start=10)
    channel, sender, receiver = await open_channel(100)
    async with sender, receiver, anyio.create_task_group() as tg:
        for n in range(3):
            sender.send_nowait(message(n))
        tg.start_soon(drain, spool, sender)
        assert numbers(await receive(receiver, 6)) == [0, 1, 2, 10, 11, 12]
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_drain_waits_while_the_channel_is_full_and_resumes(spool):
    spool_messages(spool, 6)
    ids = [row_id for row_id, _ in spool.peek(10)]
    channel, sender, receiver = await open_channel(2)
    async with sender, receiver, anyio.create_task_group() as tg:
        tg.start_soon(drain, spool, sender)
        await wait_until(lambda: channel.statistics().senders_waiting == 1)
        # Two sent and deleted; the third waits for room and is still spooled with the rest.
        assert channel.statistics().depth == 2
        assert [row_id for row_id, _ in spool.peek(10)] == ids[2:]
        assert numbers(await receive(receiver, 2)) == [0, 1]
        assert numbers(await receive(receiver, 4)) == [2, 3, 4, 5]
        await wait_until(lambda: len(spool) == 0)
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_cancelling_a_blocked_drain_keeps_exactly_the_unsent(spool_path):
    with DiskSpool(spool_path, max_bytes=1 << 20, max_age=3600) as spool:
        spool_messages(spool, 6)
        ids = [row_id for row_id, _ in spool.peek(10)]
        channel, sender, receiver = await open_channel(2)
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain, spool, sender)
            await wait_until(lambda: channel.statistics().senders_waiting == 1)
            tg.cancel_scope.cancel()
        assert [row_id for row_id, _ in spool.peek(10)] == ids[2:]
        assert channel.statistics().depth == 2
    # "Restart": a new spool object on the same file, a new drain into the same channel.
    with DiskSpool(spool_path, max_bytes=1 << 20, max_age=3600) as spool:
        async with sender, receiver, anyio.create_task_group() as tg:
            tg.start_soon(drain, spool, sender)
            assert numbers(await receive(receiver, 6)) == list(range(6))
            await wait_until(lambda: len(spool) == 0)
            tg.cancel_scope.cancel()
        assert channel.statistics().sent == 6  # nothing sent twice


@pytest.mark.anyio
@pytest.mark.parametrize("taken_before_cancel", [1, 2, 3, 4])
async def test_cancelling_while_the_receiver_frees_room_loses_nothing(spool, taken_before_cancel):
    spool_messages(spool, 6)
    channel, sender, receiver = await open_channel(2)
    async with sender, receiver:
        got: list[EnvelopeMessage] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain, spool, sender)
            for _ in range(taken_before_cancel):
                await wait_until(lambda: channel.statistics().senders_waiting == 1)
                # Taking one lets the blocked send finish; cancel before the drain runs again.
                got.append(receiver.receive_nowait().message)
            tg.cancel_scope.cancel()
        while True:
            try:
                got.append(receiver.receive_nowait().message)
            except anyio.WouldBlock:
                break
        left = [decode_envelope_message(record) for _, record in spool.peek(10)]
    # The send the receiver completed counts as sent (deleted); the rest stay: each exactly once.
    assert numbers(got) == list(range(taken_before_cancel + 2))
    assert numbers(got) + numbers(left) == list(range(6))


@pytest.mark.anyio
async def test_drain_expires_old_messages_first_and_reports_each(spool_path):
    expired: list[EnvelopeMessage] = []
    with DiskSpool(spool_path, max_bytes=1 << 20, max_age=60) as spool:
        old = time.time() - 3600  # an hour past max_age: no timing involved
        for n in range(3):
            spool.put(encode_envelope_message(message(n)), now=old)
        spool_messages(spool, 2, start=3)
        channel, sender, receiver = await open_channel(10)
        async with sender, receiver, anyio.create_task_group() as tg:
            # batch=2: the first round is all expired records, so it must send nothing.
            tg.start_soon(lambda: drain(spool, sender, batch=2, on_expired=expired.append))
            assert numbers(await receive(receiver, 2)) == [3, 4]
            await wait_until(lambda: len(spool) == 0)
            tg.cancel_scope.cancel()
    assert numbers(expired) == [0, 1, 2]
    assert all(m.project_id == 1 for m in expired)


@pytest.mark.anyio
async def test_drain_drops_an_undecodable_record_and_goes_on(spool, caplog):
    spool_messages(spool, 1)
    bad = spool.put(b"garbage")
    spool_messages(spool, 1, start=1)
    channel, sender, receiver = await open_channel(10)
    async with sender, receiver, anyio.create_task_group() as tg:
        tg.start_soon(drain, spool, sender)
        assert numbers(await receive(receiver, 2)) == [0, 1]
        await wait_until(lambda: len(spool) == 0)
        tg.cancel_scope.cancel()
    assert f"dropping spool record {bad}" in caplog.text


@pytest.mark.anyio
async def test_drain_picks_up_records_put_while_it_polls(spool):
    channel, sender, receiver = await open_channel(10)
    async with sender, receiver, anyio.create_task_group() as tg:
        tg.start_soon(lambda: drain(spool, sender, poll_interval=0.001))
        await anyio.to_thread.run_sync(spool_messages, spool, 2)
        assert numbers(await receive(receiver, 2)) == [0, 1]
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_drain_into_a_broken_channel_raises_and_keeps_the_records(spool):
    spool_messages(spool, 3)
    channel, sender, receiver = await open_channel(10)
    await receiver.aclose()  # no receiver left
    async with sender:
        with anyio.fail_after(GUARD), pytest.raises(anyio.BrokenResourceError):
            await drain(spool, sender)
    assert len(spool) == 3
