"""Login attempts counted in Redis, so that attempts spread over nodes count together.

The same semantics as `signaling.login_throttle.LoginThrottle` (a sliding window per account and
per address, counted on arrival, a correct password taking its attempt back), kept as one sorted
set per key: each attempt is a member scored by its time in milliseconds. One Lua script trims,
counts and adds atomically, so two nodes' parallel guesses cannot both slip under the limit, and
the time is Redis's own (`TIME`), so nodes with skewed clocks count alike. Each set expires one
window after its last attempt: no key outlives its use.

The keys name a SHA-256 of the username or address, not the value itself: Redis holds no
plain-text usernames or client addresses. The second factor's code step keeps its own counts
(`namespace="login-code"`, routes_second_factor.py), as a node alone does.

Redis unreachable: the attempt is refused with 503 `storage_unavailable` and Retry-After, like a
database that cannot answer; counting nothing would let guesses through unlimited.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
from typing import TYPE_CHECKING

from signaling.config import LimitsConfig
from signaling.http_errors import STORAGE_RETRY_AFTER_SECONDS, ApiError
from signaling.login_throttle import Attempt

if TYPE_CHECKING:
    from signaling.cluster.redis_link import RedisLink

__all__ = ["RedisLoginAttempts"]

# KEYS: account set, address set. ARGV: account limit, address limit, window ms, member.
# Returns {1, now_ms} when counted, {0, wait_ms} when refused.
BEGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local wait = 0
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local limit = tonumber(ARGV[i])
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    -- the oldest attempt that keeps the count at the limit must leave the window
    local oldest = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return {0, wait} end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[i], window)
end
return {1, now}
"""


class RedisLoginAttempts:
    """`LoginAttempts` for a cluster."""

    def __init__(
        self,
        link: RedisLink,
        prefix: str,
        limits: LimitsConfig,
        namespace: str = "login",
        unavailable: str = "Sign-in is not possible right now; try again in a moment",
    ) -> None:
        self._link = link
        self._prefix = f"{prefix}{namespace}:"
        self._unavailable = unavailable
        self._limits = (limits.login_attempts_per_account, limits.login_attempts_per_address)
        self._window_ms = limits.login_window_seconds * 1000
        self._begin = link.redis.register_script(BEGIN)

    async def begin(self, username: str, address: str) -> Attempt | int:
        from signaling.cluster.redis_link import RedisUnavailable

        token = secrets.token_hex(8)
        keys = [self._key("account", username.lower()), self._key("address", address)]
        try:
            counted, value = await self._link.call(
                lambda: self._begin(keys=keys, args=[*self._limits, self._window_ms, token])
            )
        except RedisUnavailable:
            raise ApiError(
                503,
                "storage_unavailable",
                self._unavailable,
                {"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
            ) from None
        if not counted:
            return max(1, math.ceil(int(value) / 1000))
        return Attempt(username, address, int(value) / 1000, token)

    async def succeeded(self, attempt: Attempt) -> None:
        """The account starts over; the address gets this attempt back. If Redis is gone just
        now, the attempt stays counted until its window ends: harmless, and the sign-in itself
        has already succeeded."""
        from signaling.cluster.redis_link import RedisUnavailable

        redis = self._link.redis
        account = self._key("account", attempt.username.lower())
        address = self._key("address", attempt.address)

        async def give_back() -> None:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.delete(account)
                pipe.zrem(address, attempt.token)
                await pipe.execute()

        with contextlib.suppress(RedisUnavailable):
            await self._link.call(give_back)

    def _key(self, kind: str, value: str) -> str:
        digest = hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()[:32]
        return f"{self._prefix}{kind}:{digest}"
