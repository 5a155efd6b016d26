""":class:`~minisentry.quota_counters.QuotaCounters` in Redis: one counter per key, shared by every relay.

One ``check_and_increment`` call is one Lua script, so it is atomic across processes: no relay can
slip an increment between another's check and increment. Each counter key gets EXPIREAT the end of
its window plus ``grace`` seconds (clock drift between relays), so Redis forgets ended windows.
"""

from __future__ import annotations

from typing import Any, Sequence

import anyio

from ..quota_counters import CounterRequest
from .redis_client import check_prefix, make_client, translated

__all__ = ["RedisQuotaCounters", "CHECK_AND_INCREMENT"]

# KEYS: every request's counter, group after group.
# ARGV[1]: grace seconds; then per group: its size n, then n triples (limit or -1, quantity, expires_at).
# Returns per group a list of 0/1 (1: rejected). Same decision as MemoryQuotaCounters: a request is
# rejected when its counter plus its quantity passes its limit; a group is counted only if none is.
CHECK_AND_INCREMENT = """
local grace = tonumber(ARGV[1])
local results = {}
local k = 1
local a = 2
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  a = a + 1
  local rejected = {}
  local any = false
  for i = 0, n - 1 do
    local limit = tonumber(ARGV[a + 3 * i])
    local quantity = tonumber(ARGV[a + 3 * i + 1])
    local value = tonumber(redis.call('GET', KEYS[k + i]) or '0')
    if limit >= 0 and value + quantity > limit then
      rejected[i + 1] = 1
      any = true
    else
      rejected[i + 1] = 0
    end
  end
  if not any then
    for i = 0, n - 1 do
      redis.call('INCRBY', KEYS[k + i], ARGV[a + 3 * i + 1])
      redis.call('EXPIREAT', KEYS[k + i], tonumber(ARGV[a + 3 * i + 2]) + grace)
    end
  end
  results[#results + 1] = rejected
  k = k + n
  a = a + 3 * n
end
return results
"""


class RedisQuotaCounters:
    """Quota counters under ``{prefix}:{request key}`` in one Redis (not a cluster: one script, many keys).

    The Redis call blocks, so it runs in a worker thread (works on trio and asyncio); it is not
    abandoned when the caller is cancelled, because a counted-but-unanswered call must finish. A
    call takes at most ``socket_timeout``; raises BackendError when Redis fails. Ignores ``now``:
    windows end at the requests' ``expires_at`` on Redis's clock.
    """

    name = "redis"

    def __init__(self, client_or_url: Any, *, prefix: str = "minisentry", socket_timeout: float = 5.0,
                 grace: int = 60) -> None:
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
            raise ValueError(f"grace must be an integer >= 0, got {grace!r}")
        self._prefix = check_prefix(prefix) + ":"
        self.grace = grace
        self.client, self.label = make_client(client_or_url, socket_timeout=socket_timeout)
        self._script = self.client.register_script(CHECK_AND_INCREMENT)

    async def check_and_increment(self, groups: Sequence[Sequence[CounterRequest]],
                                  now: float) -> list[list[bool]]:
        """See QuotaCounters.check_and_increment. Blocks a worker thread for one round trip."""
        if not any(groups):
            return [[] for _ in groups]
        return await anyio.to_thread.run_sync(self._run, groups)

    def _run(self, groups: Sequence[Sequence[CounterRequest]]) -> list[list[bool]]:
        keys: list[str] = []
        args: list[int] = [self.grace]
        for group in groups:
            args.append(len(group))
            for request in group:
                keys.append(self._prefix + request.key)
                args += [-1 if request.limit is None else request.limit, request.quantity, request.expires_at]
        with translated(self.label, "quota check"):
            replies = self._script(keys=keys, args=args)
        return [[flag == 1 for flag in reply] for reply in replies]

    def close(self) -> None:
        """Release the connections. Raises nothing."""
        self.client.close()
