"""The Fanout contract (fanout.py) against the in-process fan-out and Redis pub/sub.

``open_fanout()`` twice gives two handles on one fan-out: two "processes" for Redis (two clients,
two listener threads), the same instance for memory (which only reaches its own process). The
watcher tests poll every 30 s, so only a fan-out wake-up can explain a change seen within 1 s.
"""

from __future__ import annotations

import anyio
import pytest

from minisentry.errors import BackendFull
from minisentry.fanout import Fanout, MemoryFanout, Subscription, check_topic
from minisentry.killswitches import KillSwitches
from minisentry.projects import ProjectKeys

pytestmark = pytest.mark.anyio

SLOW_POLL = 30.0  # watchers' poll interval: far longer than any wait below
KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture(params=[pytest.param("memory", id="memory"),
                        pytest.param("redis", id="redis", marks=pytest.mark.services)])
def open_fanout(request):
    opened: list = []
    if request.param == "memory":
        shared = MemoryFanout(max_subscriptions=4)

        def open_memory():
            return shared

        yield open_memory
        shared.close()
        return
    from minisentry.backends.redis_fanout import RedisFanout

    url, prefix = request.getfixturevalue("redis_prefix")

    def open_redis():
        fanout = RedisFanout(url, prefix=prefix, max_subscriptions=4, poll=0.1)
        opened.append(fanout)
        return fanout

    yield open_redis
    for fanout in opened:
        fanout.close()


async def subscribe(fanout, topic: str) -> Subscription:
    return await anyio.to_thread.run_sync(fanout.subscribe, topic)


async def publish(fanout, topic: str) -> None:
    await anyio.to_thread.run_sync(fanout.publish, topic)


async def test_follows_the_protocol(open_fanout):
    assert isinstance(open_fanout(), Fanout)


async def test_a_publish_wakes_a_waiting_subscriber_at_once(open_fanout):
    fanout = open_fanout()
    with await subscribe(fanout, "projects") as subscription:
        woke: list[bool] = []

        async def waiter() -> None:
            woke.append(await subscription.wait(SLOW_POLL))

        with anyio.fail_after(1):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                await publish(fanout, "projects")
        assert woke == [True]


async def test_without_a_publish_wait_times_out_false(open_fanout):
    with await subscribe(open_fanout(), "projects") as subscription:
        started = anyio.current_time()
        assert await subscription.wait(0.2) is False
        assert anyio.current_time() - started >= 0.19


async def test_a_publish_while_nobody_waits_is_kept_and_a_burst_is_one_wake_up(open_fanout):
    fanout = open_fanout()
    with await subscribe(fanout, "killswitches") as subscription:
        for _ in range(50):
            await publish(fanout, "killswitches")
        await anyio.sleep(0.3)  # let Redis deliver them all
        with anyio.fail_after(1):
            assert await subscription.wait(SLOW_POLL) is True
        assert await subscription.wait(0.2) is False  # the flag is one bool, not a queue


async def test_topics_are_separate(open_fanout):
    fanout = open_fanout()
    with await subscribe(fanout, "projects") as projects, await subscribe(fanout, "killswitches") as switches:
        await publish(fanout, "killswitches")
        with anyio.fail_after(1):
            assert await switches.wait(SLOW_POLL) is True
        assert await projects.wait(0.2) is False


async def test_every_subscriber_in_every_process_is_woken(open_fanout):
    one, two = open_fanout(), open_fanout()
    with await subscribe(one, "projects") as a, await subscribe(two, "projects") as b:
        await publish(two, "projects")
        with anyio.fail_after(1):
            assert await a.wait(SLOW_POLL) is True
            assert await b.wait(SLOW_POLL) is True


async def test_at_max_subscriptions_subscribe_raises_and_closing_frees_a_slot(open_fanout):
    fanout = open_fanout()
    subscriptions = [await subscribe(fanout, f"t{i}") for i in range(4)]
    with pytest.raises(BackendFull, match="max_subscriptions = 4"):
        await subscribe(fanout, "one-too-many")
    subscriptions[0].close()
    subscriptions[0].close()  # idempotent
    subscriptions.append(await subscribe(fanout, "fits-again"))
    for subscription in subscriptions:
        subscription.close()


async def test_one_task_waits_per_subscription(open_fanout):
    with await subscribe(open_fanout(), "projects") as subscription:
        async with anyio.create_task_group() as tg:
            tg.start_soon(subscription.wait, SLOW_POLL)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(RuntimeError, match="already waits"):
                await subscription.wait(0.1)
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("topic", ["", "Projects", "a b", "x" * 65, "-lead", "caf\u00e9"])
async def test_malformed_topics_are_refused(open_fanout, topic):
    fanout = open_fanout()
    with pytest.raises(ValueError, match="topic"):
        fanout.publish(topic)
    with pytest.raises(ValueError, match="topic"):
        fanout.subscribe(topic)
    assert check_topic("a.b-c_1") == "a.b-c_1"


# -- the watchers wake on a publish ------------------------------------------------------------------


async def test_killswitch_watchers_in_two_processes_apply_a_pushed_value_within_a_second(open_fanout):
    stored: dict = {}
    watchers = [KillSwitches(), KillSwitches()]
    fanouts = [open_fanout(), open_fanout()]
    async with anyio.create_task_group() as tg:
        for switches, fanout in zip(watchers, fanouts):
            wake = await subscribe(fanout, "killswitches")
            await tg.start(lambda task_status, s=switches, w=wake: s.watch(
                lambda: dict(stored), interval=SLOW_POLL, wake=w, task_status=task_status))
        assert not any(s.enabled("drop_before_parsing") for s in watchers)
        stored["drop_before_parsing"] = [{"project_id": 7}]  # what `killswitches push` writes ...
        started = anyio.current_time()
        await publish(fanouts[0], "killswitches")  # ... and then publishes
        with anyio.fail_after(1):
            while not all(s.matches("drop_before_parsing", project_id=7) for s in watchers):
                await anyio.sleep(0.01)
        assert anyio.current_time() - started < 1
        tg.cancel_scope.cancel()


async def test_key_watchers_in_two_processes_follow_a_disabled_key_within_a_second(open_fanout):
    table = {KEY: (1, True)}
    version = [1]
    watchers = [ProjectKeys(lambda: dict(table)), ProjectKeys(lambda: dict(table))]
    fanouts = [open_fanout(), open_fanout()]
    async with anyio.create_task_group() as tg:
        for keys, fanout in zip(watchers, fanouts):
            wake = await subscribe(fanout, "projects")
            await tg.start(lambda task_status, k=keys, w=wake: k.watch(
                lambda: version[0], interval=SLOW_POLL, wake=w, task_status=task_status))
        assert all(k.known_project_of(KEY) == 1 for k in watchers)
        table[KEY], version[0] = (1, False), 2  # `minisentry projects disable-key` ...
        await publish(fanouts[1], "projects")  # ... then publishes
        with anyio.fail_after(1):
            while any(k.known_project_of(KEY) is not None for k in watchers):
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
