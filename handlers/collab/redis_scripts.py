"""The Lua scripts of collab on Redis: each runs atomically on the node holding one session's keys
(one hash tag), reads the time from Redis (``TIME``), never from a host, and publishes the events
of what it changed in the same step, so an event is sent once, by the host whose script made it.

Keys of a session (``KEYS`` order): ``session`` (hash: ``rev``, ``record``, ``people``),
``locks`` (hash: ``<holder>\\0<resource>`` -> ``<core JSON>\\n<metadata JSON>``), ``hosts`` (sorted
set: a host's user -> the Redis time in ms until which it is alive). A published message is
``{"e": event, "p": params, "to": [participant ids] | null}``.
"""

from __future__ import annotations

#: Shared by every script: the time, the participants, the lock records, path overlap, publishing.
_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function people(key)
  local raw = redis.call('HGET', key, 'people')
  local ids = {}
  if raw then for id, _ in pairs(cjson.decode(raw)) do ids[#ids + 1] = id end end
  table.sort(ids)
  return ids
end
local function core(value)
  local cut = string.find(value, '\\n', 1, true)
  return cjson.decode(string.sub(value, 1, cut - 1))
end
local function overlaps(a, b)
  for i = 1, math.min(#a, #b) do if a[i] ~= b[i] then return false end end
  return true
end
local function publish(channel, event, params, to)
  redis.call('PUBLISH', channel, cjson.encode({e = event, p = params, to = to}))
end
local function expire_locks(locks, now, session, channel, to)
  local all = redis.call('HGETALL', locks)
  local live = {}
  for i = 1, #all, 2 do
    local lock = core(all[i + 1])
    if lock.expires <= now then
      redis.call('HDEL', locks, all[i])
      publish(channel, 'collab.lock_expired', {session = session, resource = lock.resource, holder = lock.holder,
                                               reason = 'expired'}, to)
    else
      live[#live + 1] = {all[i], lock}
    end
  end
  return live
end
"""

#: KEYS session, locks, hosts. -> {now_ms, rev, record, people, n, n alive host users, field, value,
#: field, value...} (live locks only)
LOAD = _COMMON + """
local now = now_ms()
local head = redis.call('HMGET', KEYS[1], 'rev', 'record', 'people')
local out = {string.format('%.0f', now), head[1] or '0', head[2] or '', head[3] or '{}'}
local alive = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. string.format('%.0f', now), '+inf')
out[#out + 1] = tostring(#alive)
for _, host in ipairs(alive) do out[#out + 1] = host end
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if core(all[i + 1]).expires > now then out[#out + 1] = all[i]; out[#out + 1] = all[i + 1] end
end
return out
"""

#: KEYS session, locks, hosts, comments, conflicts. ARGV rev (0: create), record, people, channel,
#: events JSON, {holder: reason} whose locks end, (unused), host user ('' none), host ttl ms, delete ('1').
#: -> 1, or 0 when the session moved (or exists, for a create).
CAS = _COMMON + """
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
local now = now_ms()
local session = cjson.decode(ARGV[2]).id
if ARGV[10] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
else
  redis.call('HSET', KEYS[1], 'rev', tostring(rev + 1), 'record', ARGV[2], 'people', ARGV[3])
end
if ARGV[8] ~= '' then redis.call('ZADD', KEYS[3], now + tonumber(ARGV[9]), ARGV[8]) end
local gone = cjson.decode(ARGV[6])
local to = people(KEYS[1])
if next(gone) ~= nil then
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    local lock = core(all[i + 1])
    if gone[lock.holder] then
      redis.call('HDEL', KEYS[2], all[i])
      publish(ARGV[4], 'collab.lock_released', {session = session, resource = lock.resource, holder = lock.holder,
                                                reason = gone[lock.holder]}, to)
    end
  end
end
for _, message in ipairs(cjson.decode(ARGV[5])) do redis.call('PUBLISH', ARGV[4], message) end
return 1
"""

#: KEYS session, locks. ARGV session, holder, resource, doc, path JSON, kind, ttl ms, token, metadata
#: JSON, channel, the ``collab.lock_acquired`` params JSON. -> {'ok', core JSON, renewed '0'|'1', now ms, metadata JSON} | {'locked', value} | {'gone'}
#: (the holder is not in the session). A renewal without metadata keeps the lock's.
ACQUIRE = _COMMON + """
local now = now_ms()
local here = redis.call('HGET', KEYS[1], 'people')
if not here or cjson.decode(here)[ARGV[2]] == nil then return {'gone'} end
local to = people(KEYS[1])
local path = cjson.decode(ARGV[5])
local field = ARGV[2] .. '\\0' .. ARGV[3]
local mine = nil
for _, pair in ipairs(expire_locks(KEYS[2], now, ARGV[1], ARGV[10], to)) do
  local f, lock = pair[1], pair[2]
  if f == field then
    mine = lock
  elseif lock.holder ~= ARGV[2] and lock.doc == ARGV[4] and overlaps(lock.path, path)
      and (ARGV[6] == 'exclusive' or lock.kind == 'exclusive') then
    return {'locked', redis.call('HGET', KEYS[2], f)}
  end
end
if mine and mine.token ~= ARGV[8] then
  return {'locked', redis.call('HGET', KEYS[2], field)}  -- the holder's, granted to another host's process
end
local meta = ARGV[9]
if mine and meta == 'null' then
  local old = redis.call('HGET', KEYS[2], field)
  meta = string.sub(old, string.find(old, '\\n', 1, true) + 1)
end
local lock = cjson.encode({resource = ARGV[3], doc = ARGV[4], path = path, kind = ARGV[6], holder = ARGV[2],
                           token = ARGV[8], expires = now + tonumber(ARGV[7])})
redis.call('HSET', KEYS[2], field, lock .. '\\n' .. meta)
if not mine then  -- a grant (not a renewal): told in the same step, so grants and ends are told in order
  redis.call('PUBLISH', ARGV[10], '{"e":"collab.lock_acquired","p":' .. ARGV[11] .. ',"to":' .. cjson.encode(to) .. '}')
end
return {'ok', lock, mine and '1' or '0', string.format('%.0f', now), meta}
"""

#: KEYS session, locks. ARGV session, holder, resource, token, channel. -> 1 released, 0 not held
#: (or not by this token: a lock is released only by its owner).
RELEASE = _COMMON + """
local field = ARGV[2] .. '\\0' .. ARGV[3]
local value = redis.call('HGET', KEYS[2], field)
if not value then return 0 end
local lock = core(value)
if lock.token ~= ARGV[4] or lock.expires <= now_ms() then return 0 end
redis.call('HDEL', KEYS[2], field)
publish(ARGV[5], 'collab.lock_released', {session = ARGV[1], resource = ARGV[3], holder = ARGV[2],
                                          reason = 'released'}, people(KEYS[1]))
return 1
"""

#: KEYS session, locks, hosts. ARGV session, channel, host user ('' if it has no one here), ttl ms.
#: Expires due locks (publishing ``collab.lock_expired``), keeps this host alive in the session,
#: drops hosts past their time. -> {now_ms, rev} (rev -1: no such session)
SWEEP = _COMMON + """
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then return {string.format('%.0f', now), '-1'} end
expire_locks(KEYS[2], now, ARGV[1], ARGV[2], people(KEYS[1]))
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[3]) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
return {string.format('%.0f', now), redis.call('HGET', KEYS[1], 'rev') or '0'}
"""

#: KEYS the user's key. ARGV token (this process), ttl ms. Claims or renews a host's user for this
#: process: -> 1, or 0 while another live process holds it (two hosts may not share a user).
HOST = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: KEYS the user's key. ARGV token. Frees the user if this process holds it.
HOST_FREE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
