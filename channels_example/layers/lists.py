"""The layer's message format in Redis: each channel a list of ``<expires at, ms>|<content>``.

asgi_redis keeps each message in a key of its own, with an expiry, and puts the key on
its channel's list; a reader pops the key and then fetches and deletes the message, a
second round trip. Here the message travels in the list itself, so a blocked reader's
BLPOP returns it. The content is asgi_redis's (msgpack, encrypted if configured), and so
are the list names, capacities (the list's length) and Groups; every process of a
deployment must use the project's layers, since a stock asgi_redis process would take
these items for keys.

Expired messages are skipped when popped, by Redis's clock (TIME). An item with no ``|``
is an asgi_redis key from before an upgrade, and is skipped too.
"""

# Redis's clock in milliseconds, as ``now``.
NOW_MS = """
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
"""

# ``list_push(list, content, expiry s, capacity)``: a message onto its channel's list; false
# when the list is full.
LUA_PUSH = """
    local function list_push(list, content, expiry, capacity)
      if redis.call('LLEN', list) >= capacity then return false end
      local time = redis.call('TIME')
      local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
      redis.call('RPUSH', list, (now + expiry * 1000) .. '|' .. content)
      redis.call('EXPIRE', list, expiry + 1)
      return true
    end
"""

# asgi_redis's send and the outbox call it. KEYS: a message key (unused), the channel's
# list. ARGV: content, expiry (s), capacity.
LUA_CHANSEND = LUA_PUSH + """
    if not list_push(KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])) then return redis.error_reply("full") end
"""

# KEYS: channel lists, in order. Pops the first message not expired; {list, content}, or nil.
LUA_POPGET = NOW_MS + """
    for _, list in ipairs(KEYS) do
      while true do
        local item = redis.call('LPOP', list)
        if not item then break end
        local bar = string.find(item, '|', 1, true)
        if bar and tonumber(string.sub(item, 1, bar - 1)) > now then return {list, string.sub(item, bar + 1)} end
      end
    end
    return nil
"""

# KEYS[1]: one channel list; ARGV[1]: how many. Pops up to that many messages and returns
# the contents of those not expired.
LUA_POPBATCH = NOW_MS + """
    local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
    if #items == 0 then return {} end
    redis.call('LTRIM', KEYS[1], #items, -1)
    local found = {}
    for _, item in ipairs(items) do
      local bar = string.find(item, '|', 1, true)
      if bar and tonumber(string.sub(item, 1, bar - 1)) > now then table.insert(found, string.sub(item, bar + 1)) end
    end
    return found
"""


def message_of(item):
    """The content of a message as its list holds it; None for an asgi_redis key."""
    bar = item.find(b"|")
    return item[bar + 1:] if bar >= 0 else None


def expired(item, now_ms):
    """True for an item whose message expired by ``now_ms`` (Redis's clock), or an asgi_redis key."""
    expires, bar, _ = item.partition(b"|")
    return not bar or int(expires) <= now_ms
