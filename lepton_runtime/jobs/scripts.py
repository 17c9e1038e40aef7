"""The Lua scripts that change state atomically: a bulk job's, so redelivered or concurrent chunks count once, and a
task result's (stored unless a twin already succeeded; an interactive request answered and acknowledged together).

Every script takes the same KEYS (JobKeys.all(): record, inputs, chunk states, chunk runs, chunk
errors, results, chunk positions; then the per-tenant bulk counters) and starts its ARGV with: finished channel, TTL
in seconds, now (epoch seconds), chunk index. Completion is detected by counters (done + failed == total), never by a
chord.
"""

from __future__ import annotations

_PRELUDE = """
local record, inputs, states, runs, errors, results = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local channel, ttl, now, chunk = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local tenant_counters = KEYS[8]
local function refresh_ttl()
  for i = 1, 7 do redis.call('EXPIRE', KEYS[i], ttl) end  -- the job's own keys; the counters are everyone's
end
local function count(what, by)  -- the job's tenant's bulk counter `what` (the metrics read them)
  local tenant = redis.call('HGET', record, 'tenant') or 'default'
  redis.call('HINCRBY', tenant_counters, tenant .. '|' .. what, by)
end
local function finish_if_complete()
  local total = tonumber(redis.call('HGET', record, 'total_chunks'))
  local done = tonumber(redis.call('HGET', record, 'done_chunks'))
  local failed = tonumber(redis.call('HGET', record, 'failed_chunks'))
  if done + failed < total then return end
  local state = redis.call('HGET', record, 'state')
  if state ~= 'queued' and state ~= 'running' then return end
  local final = 'succeeded'
  if failed > 0 then final = 'failed' end
  redis.call('HSET', record, 'state', final, 'finished_at', now)
  if final == 'succeeded' then redis.call('DEL', inputs) end
  count('jobs_' .. final, 1)
  refresh_ttl()
  redis.call('PUBLISH', channel, final)
end
"""

# -> 'run' when the caller should process the chunk, else why not: done | failed | cancelled | missing (no such job
# or no such chunk in it).
START_CHUNK = (
    _PRELUDE
    + """
if redis.call('EXISTS', record) == 0 then return 'missing' end
local state = redis.call('HGET', states, chunk)
if not state then return 'missing' end  -- no such chunk in this job (a forged or corrupt message)
if state == 'done' or state == 'failed' or state == 'cancelled' then return state end
if redis.call('HGET', record, 'cancelled') == '1' then
  redis.call('HSET', states, chunk, 'cancelled')
  redis.call('HINCRBY', record, 'cancelled_chunks', 1)
  return 'cancelled'
end
redis.call('HSET', states, chunk, 'running')
redis.call('HSET', record, 'active_at', now)
redis.call('HINCRBY', runs, chunk, 1)
redis.call('HINCRBY', record, 'chunk_runs', 1)
if redis.call('HGET', record, 'state') == 'queued' then redis.call('HSET', record, 'state', 'running') end
redis.call('HSETNX', record, 'started_at', now)
return 'run'
"""
)

# ARGV[5] rows (JSON lines), ARGV[6] texts, ARGV[7] error rows. -> 1 if written, 0 if it already was.
COMPLETE_CHUNK = (
    _PRELUDE
    + """
if redis.call('EXISTS', record) == 0 then return 0 end
local state = redis.call('HGET', states, chunk)
if state == 'done' then return 0 end
if state == 'failed' then redis.call('HINCRBY', record, 'failed_chunks', -1) end
if state == 'cancelled' then redis.call('HINCRBY', record, 'cancelled_chunks', -1) end
redis.call('HSET', results, chunk, ARGV[5])
redis.call('EXPIRE', results, ttl)
redis.call('HSET', states, chunk, 'done')
redis.call('HSET', record, 'active_at', now)
redis.call('HDEL', errors, chunk)
redis.call('HINCRBY', record, 'done_chunks', 1)
redis.call('HINCRBY', record, 'done_texts', ARGV[6])
redis.call('HINCRBY', record, 'error_items', ARGV[7])
count('texts', tonumber(ARGV[6]) - tonumber(ARGV[7]))  -- answered: the invalid ones apart
count('invalid_texts', ARGV[7])
finish_if_complete()
return 1
"""
)

# ARGV[5] error JSON {"code", "message"}. -> 1 if the chunk is now failed, 0 if it was done or cancelled.
FAIL_CHUNK = (
    _PRELUDE
    + """
if redis.call('EXISTS', record) == 0 then return 0 end
local state = redis.call('HGET', states, chunk)
if not state then return 0 end  -- no such chunk in this job (a forged or corrupt message): not the job's failure
if state == 'done' or state == 'cancelled' then return 0 end
redis.call('HSET', errors, chunk, ARGV[5])
redis.call('EXPIRE', errors, ttl)
if state ~= 'failed' then
  redis.call('HSET', states, chunk, 'failed')
  redis.call('HINCRBY', record, 'failed_chunks', 1)
  count('failed_chunks', 1)
end
finish_if_complete()
return 1
"""
)

# -> the job's state after the cancel, or 'missing'.
CANCEL_JOB = (
    _PRELUDE
    + """
if redis.call('EXISTS', record) == 0 then return 'missing' end
local state = redis.call('HGET', record, 'state')
if state ~= 'queued' and state ~= 'running' then return state end
redis.call('HSET', record, 'cancelled', '1', 'state', 'cancelled', 'finished_at', now)
count('jobs_cancelled', 1)
refresh_ttl()
redis.call('PUBLISH', channel, 'cancelled')
return 'cancelled'
"""
)

# ARGV[5..]: chunk indices to requeue (none: every failed chunk). -> the requeued indices, or
# {-1} for a missing job, {-2} for a cancelled one. Only failed chunks are ever requeued.
REQUEUE_FAILED = (
    _PRELUDE
    + """
if redis.call('EXISTS', record) == 0 then return {-1} end
if redis.call('HGET', record, 'cancelled') == '1' then return {-2} end
local candidates = {}
if #ARGV > 4 then
  for i = 5, #ARGV do table.insert(candidates, ARGV[i]) end
else
  local all = redis.call('HGETALL', states)
  for i = 1, #all, 2 do if all[i + 1] == 'failed' then table.insert(candidates, all[i]) end end
end
local requeued = {}
for _, index in ipairs(candidates) do
  if redis.call('HGET', states, index) == 'failed' then
    redis.call('HSET', states, index, 'queued')
    redis.call('HDEL', errors, index)
    redis.call('HINCRBY', record, 'failed_chunks', -1)
    table.insert(requeued, tonumber(index))
  end
end
if #requeued > 0 then
  redis.call('HSET', record, 'state', 'queued')
  redis.call('HDEL', record, 'finished_at')
  redis.call('HINCRBY', record, 'retries', 1)
  refresh_ttl()
end
return requeued
"""
)


# -- results ----------------------------------------------------------------------------------------
# store(result key, notice list or false, encoded meta, TTL s (0: none), notice TTL s) -> 1 stored, 0 kept
# (a twin delivery already stored a SUCCESS). Waiting Celery clients are woken through pub/sub, an
# interactive client through its notice list.
_STORE_FUNCTION = """
local function store(result_key, notice_key, meta, ttl, notice_ttl)
  local current = redis.call('GET', result_key)
  if current then
    local ok, decoded = pcall(cjson.decode, current)
    if ok and type(decoded) == 'table' and decoded['status'] == 'SUCCESS' then return 0 end
  end
  if tonumber(ttl) > 0 then
    redis.call('SET', result_key, meta, 'EX', ttl)
  else
    redis.call('SET', result_key, meta)
  end
  redis.call('PUBLISH', result_key, meta)
  if notice_key then
    redis.call('RPUSH', notice_key, meta)
    redis.call('EXPIRE', notice_key, notice_ttl)
  end
  return 1
end
"""
# KEYS[1] the task's result key; ARGV: encoded meta, TTL in seconds (0: none). -> 1 stored, 0 kept.
STORE_UNLESS_SUCCEEDED = _STORE_FUNCTION + "return store(KEYS[1], false, ARGV[1], ARGV[2], 0)\n"
# A batch of interactive answers in one call. KEYS: per request its result key, notice list and tenant's stream
# (three each); ARGV: notice TTL s, consumer group, then per request its encoded meta, TTL s and stream entry.
# Each request is answered and its entry acknowledged and deleted in one step: never one without the other.
ANSWER_INTERACTIVE = (
    _STORE_FUNCTION
    + """
local stored = 0
for i = 0, #KEYS / 3 - 1 do
  stored = stored + store(KEYS[3 * i + 1], KEYS[3 * i + 2], ARGV[3 * i + 3], ARGV[3 * i + 4], ARGV[1])
  redis.call('XACK', KEYS[3 * i + 3], ARGV[2], ARGV[3 * i + 5])
  redis.call('XDEL', KEYS[3 * i + 3], ARGV[3 * i + 5])
end
return stored
"""
)
