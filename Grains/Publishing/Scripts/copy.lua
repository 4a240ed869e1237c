-- The copy of a call's lifecycle entries to ingest:calls (LifecycleCopy): entry n is appended only when n is the next
-- after the call's copied number, so each lands once and in order, whoever copies, however often.
-- KEYS: ingest:calls, {ingest:calls}:copied:<id>, {ingest:calls}:open (one slot).
-- ARGV: [1] calls MAXLEN, [2] TTL seconds of the copied number once the call is closed, [3] stream id, [4] now (Unix
--       ms), [5] close-at (the call is stopped and this is its last lifecycle number: copied that far, it leaves the open
--       set; 0: live), [6] expiry of the calls stream and the open set themselves (0: none, as for ingest:calls),
--       [7] the number known copied (the caller's floor) and [8] the ingest:calls id it was copied as (or ''),
--       [9] numbers below this one are gone from the call's own keys (lost: they are skipped), [10] entry count M, then
--       per entry: its number n, F, F name/value pairs.
-- The copied number can go back: it was deleted or evicted (ingest:calls still holds the entries), or a failover lost
-- the last writes of this slot (ingest:calls lacks them too). The floor's entry tells which: still in ingest:calls, or
-- below its oldest entry (trimmed), the entries are there; otherwise they are re-copied.
-- Returns { copied number, id of the last entry appended (or ''), numbers skipped as lost, first number missing from
-- the arguments (0: none) }.
local function below(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  return am < bm or (am == bm and tonumber(as) < tonumber(bs))
end
local c = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = tonumber(ARGV[7])
if c < floor and ARGV[8] ~= '' then
  local kept = #redis.call('XRANGE', KEYS[1], ARGV[8], ARGV[8]) > 0
  if not kept then
    local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
    kept = oldest ~= nil and below(ARGV[8], oldest[1])
  end
  if kept then c = floor end
end
local lost = 0
local gone = tonumber(ARGV[9])
if c + 1 < gone then
  lost = gone - 1 - c
  c = gone - 1
end
local lastId = ''
local hole = 0
local i = 11
for _ = 1, tonumber(ARGV[10]) do
  local n = tonumber(ARGV[i])
  local last = i + 1 + tonumber(ARGV[i + 1]) * 2
  if n == c + 1 then
    lastId = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i + 2, last))
    c = n
  elseif n > c + 1 then
    hole = c + 1
    break
  end
  i = last + 1
end
local close = tonumber(ARGV[5])
if close > 0 and c >= close then
  redis.call('SET', KEYS[2], c, 'EX', ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[3])
else
  -- No expiry while the call is open: a copied number that ran out under a live call would copy its entries again.
  redis.call('SET', KEYS[2], c)
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
end
local keep = tonumber(ARGV[6])
if keep > 0 then
  redis.call('EXPIRE', KEYS[1], keep)
  redis.call('EXPIRE', KEYS[3], keep)
end
return { c, lastId, lost, hole }
