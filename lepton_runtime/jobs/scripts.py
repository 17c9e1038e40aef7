"""The Lua scripts that change state atomically: a bulk job's, so redelivered or concurrent chunks count once and its
window of chunk messages refills as they finish, and a task result's (stored unless a twin already succeeded; an
interactive request answered and acknowledged together).

Every bulk script takes the same KEYS (JobKeys.all(): record, chunk states, chunk runs, chunk errors, parts, splits,
files; then the per-tenant bulk counters, the running jobs per tenant and the fleet's processes) and starts its ARGV
with: finished channel, TTL in seconds, now (epoch seconds), chunk index. Completion is detected by counters (done +
failed == total), never by a chord.

The window: a job keeps at most ``allowed`` chunk messages in the broker (sent, not yet done or failed for good),
``allowed = ceil(max(window, 2 x live worker processes) x tenant weight / the tenant's running jobs)``; the chunks past
it wait in the record (``dispatched`` is the next to send) and each chunk that finishes lets the next ones go. The
broker serves messages in order, so jobs share the workers in proportion to their windows: a job submitted behind
a giant one waits for one window's chunks, not for the giant's all, and two tenants' jobs take turns by weight.
"""

from __future__ import annotations

_PRELUDE = """
local record, states, runs, errors, parts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local tenant_counters, running_jobs, fleet = KEYS[8], KEYS[9], KEYS[10]
local channel, ttl, now, chunk = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local function refresh_ttl()
  for i = 1, 7 do redis.call('EXPIRE', KEYS[i], ttl) end  -- the job's own keys; the counters are everyone's
end
local function tenant() return redis.call('HGET', record, 'tenant') or 'default' end
local function count(what, by)  -- the job's tenant's bulk counter `what` (the metrics read them)
  redis.call('HINCRBY', tenant_counters, tenant() .. '|' .. what, by)
end
local function running(by)  -- the job's tenant's running jobs, which share its weight
  if redis.call('HINCRBY', running_jobs, tenant(), by) <= 0 then redis.call('HDEL', running_jobs, tenant()) end
end
local function open()
  local state = redis.call('HGET', record, 'state')
  return (state == 'queued' or state == 'running') and redis.call('HGET', record, 'cancelled') ~= '1'
end
-- the chunks to send now, in order, while the job has fewer than its window in the broker
local function refill()
  if not open() then return {} end
  local f = redis.call('HMGET', record, 'window', 'weight', 'dispatched', 'inflight', 'total_chunks')
  local total = tonumber(f[5])
  -- a job recorded before windows (no such fields) had every chunk sent at submit: nothing to send
  local dispatched, inflight = tonumber(f[3]) or total, tonumber(f[4]) or 0
  local base = math.max(tonumber(f[1]) or 1, 2 * redis.call('HLEN', fleet))
  local jobs = math.max(1, tonumber(redis.call('HGET', running_jobs, tenant()) or '1'))
  local allowed = math.max(1, math.ceil(base * (tonumber(f[2]) or 1) / jobs))
  local sent = {}
  while inflight < allowed and dispatched < total do
    table.insert(sent, dispatched)
    dispatched = dispatched + 1
    inflight = inflight + 1
  end
  if #sent > 0 then redis.call('HSET', record, 'dispatched', dispatched, 'inflight', inflight) end
  return sent
end
local function settled()  -- a sent chunk is done or failed for good: its place in the window is free
  local dispatched = tonumber(redis.call('HGET', record, 'dispatched'))
  if dispatched and tonumber(chunk) < dispatched then
    redis.call('HINCRBY', record, 'inflight', -1)
  end
end
-- -> the final state when the job just ended, else ''
local function finish_if_complete()
  local total = tonumber(redis.call('HGET', record, 'total_chunks'))
  local done = tonumber(redis.call('HGET', record, 'done_chunks'))
  local failed = tonumber(redis.call('HGET', record, 'failed_chunks'))
  if done + failed < total then return '' end
  local state = redis.call('HGET', record, 'state')
  if state ~= 'queued' and state ~= 'running' then return '' end
  local final = 'succeeded'
  if failed > 0 then final = 'failed' end
  redis.call('HSET', record, 'state', final, 'finished_at', now)
  if final == 'succeeded' and redis.call('HGET', record, 'total_exact') == '0' then
    redis.call('HSET', record, 'total_texts', redis.call('HGET', record, 'done_texts'), 'total_exact', '1')
  end
  count('jobs_' .. final, 1)
  running(-1)
  refresh_ttl()
  redis.call('PUBLISH', channel, final)
  return final
end
local function answer(head, final, sent)
  local reply = {head, final}
  for _, index in ipairs(sent) do table.insert(reply, index) end
  return reply
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

# ARGV[5] the part (``rows,bytes,sha256``), ARGV[6] texts, ARGV[7] error rows.
# -> {1 if recorded (0: it already was), the final state if the job just ended (else ''), chunks to send...}
COMPLETE_CHUNK = (
    _PRELUDE
    + """
if redis.call('EXISTS', record) == 0 then return {0, ''} end
local state = redis.call('HGET', states, chunk)
if not state or state == 'done' then return {0, ''} end
if state == 'failed' then redis.call('HINCRBY', record, 'failed_chunks', -1) end
if state == 'cancelled' then redis.call('HINCRBY', record, 'cancelled_chunks', -1) end
if state == 'queued' or state == 'running' then settled() end
redis.call('HSET', parts, chunk, ARGV[5])
redis.call('EXPIRE', parts, ttl)
redis.call('HSET', states, chunk, 'done')
redis.call('HSET', record, 'active_at', now)
redis.call('HDEL', errors, chunk)
redis.call('HINCRBY', record, 'done_chunks', 1)
redis.call('HINCRBY', record, 'done_texts', ARGV[6])
redis.call('HINCRBY', record, 'error_items', ARGV[7])
count('texts', tonumber(ARGV[6]) - tonumber(ARGV[7]))  -- answered: the invalid ones apart
count('invalid_texts', ARGV[7])
local final = finish_if_complete()
return answer(1, final, refill())
"""
)

# ARGV[5] error JSON {"code", "message"}.
# -> {1 if the chunk is now failed (0: it was done or cancelled), the final state if the job just ended, chunks to
# send...}
FAIL_CHUNK = (
    _PRELUDE
    + """
if redis.call('EXISTS', record) == 0 then return {0, ''} end
local state = redis.call('HGET', states, chunk)
if not state then return {0, ''} end  -- no such chunk in this job (a forged or corrupt message): not the job's failure
if state == 'done' or state == 'cancelled' then return {0, ''} end
redis.call('HSET', errors, chunk, ARGV[5])
redis.call('EXPIRE', errors, ttl)
if state ~= 'failed' then
  settled()
  redis.call('HSET', states, chunk, 'failed')
  redis.call('HINCRBY', record, 'failed_chunks', 1)
  count('failed_chunks', 1)
end
local final = finish_if_complete()
return answer(1, final, refill())
"""
)

# -> the chunks to send now (the first window of a new job, or what a lost refill left unsent).
DISPATCH = (
    _PRELUDE
    + """
if redis.call('EXISTS', record) == 0 then return {} end
return refill()
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
running(-1)
refresh_ttl()
redis.call('PUBLISH', channel, 'cancelled')
return 'cancelled'
"""
)

# ARGV[5..]: chunk indices to requeue (none: every failed chunk). -> the requeued indices, or
# {-1} for a missing job, {-2} for a cancelled one. Only failed chunks are ever requeued; the caller sends them
# (they count in the window).
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
  local state = redis.call('HGET', record, 'state')
  if state ~= 'queued' and state ~= 'running' then running(1) end
  redis.call('HSET', record, 'state', 'queued')
  -- the pause between the job's end and this retry is not running time: its rate leaves it out
  local finished_at = redis.call('HGET', record, 'finished_at')
  if finished_at then redis.call('HINCRBYFLOAT', record, 'paused_s', tonumber(now) - tonumber(finished_at)) end
  redis.call('HDEL', record, 'finished_at')
  redis.call('HINCRBY', record, 'retries', 1)
  redis.call('HINCRBY', record, 'inflight', #requeued)
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
