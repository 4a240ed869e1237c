-- The fenced batch (CallStreamWriter.WriteAsync): audio entries, lifecycle entries and the new cursor of one call, in
-- one slot, only if the cursor in Redis is the one the caller last saw.
-- KEYS: audio stream (the inbound or only track), cursor hash, meta hash, lifecycle stream, outbound track stream.
-- ARGV: [1] expected version, [2] TTL seconds of the call's keys (0: leave it), [3] cursor field count N, [4] entry
--       count M, [5] the epoch to take at least (Unix ms; negative: the caller's last script ran with this version, so
--       nobody wrote since and its value is the epoch), [6] the inbound frames the caller knows are in the stream, then
--       N name/value pairs for the cursor, then per entry:
--       'a' (audio), its frame number n, F, F name/value pairs; or 'o' (outbound track audio, as 'a'); or 'l'
--       (lifecycle), its id, F, pairs; or 'L' (lifecycle as 'l', then G and G name/value pairs HSET into the meta hash:
--       start and stop only).
-- Audio ids are epoch-n. Unfenced, the epoch is the largest of now, the stream's last id + 1 and the cursor's own epoch
-- + 1, so no two silos' clocks need to agree. Inbound audio entries come first in a batch; if the stream's last entry
-- already has the first one's frame number or a higher one (a bare append of another activation), nothing is written
-- (0). If it has a lower one than [6], the stream lost frames the caller was told were written (a master that failed
-- over or restarted before its replica had its bare appends): nothing is written (0), and the caller reloads from
-- what the stream holds, so the loss becomes a gap, never a silent hole. The outbound track is written by this script
-- only (no bare appends), so the version alone fences it.
-- Returns the epoch; the caller's bare appends use it until its next script.
local current = redis.call('HGET', KEYS[2], 'v')
if not current then current = '0' end
if current ~= ARGV[1] then return 0 end
local epoch = tonumber(ARGV[5])
local topn = -1
if epoch < 0 then
  epoch = -epoch
else
  local stored = tonumber(redis.call('HGET', KEYS[2], 'ep') or '0')
  if stored >= epoch then epoch = stored + 1 end
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  if top then
    local ms, n = string.match(top[1], '^(%d+)-(%d+)$')
    topn = tonumber(n)
    if tonumber(ms) >= epoch then epoch = tonumber(ms) + 1 end
    if topn < tonumber(ARGV[6]) then return 0 end
  end
end
local cursorEnd = 6 + tonumber(ARGV[3]) * 2
local i = cursorEnd + 1
local first = true
local tried = {}
for _ = 1, tonumber(ARGV[4]) do
  local target = ARGV[i]
  local last = i + 2 + tonumber(ARGV[i + 2]) * 2
  if target == 'a' or target == 'o' then
    if first and target == 'a' and topn >= tonumber(ARGV[i + 1]) then return 0 end
    local key = KEYS[1]
    if target == 'o' then key = KEYS[5] end
    local id = string.format('%d', epoch) .. '-' .. ARGV[i + 1]
    if not tried[target] then
      tried[target] = true
      local added = redis.pcall('XADD', key, id, unpack(ARGV, i + 3, last))
      if type(added) == 'table' and added.err then
        -- The stream's newest entries were deleted: its last generated id is above the last entry's.
        local info = redis.call('XINFO', 'STREAM', key)
        for k = 1, #info, 2 do
          if info[k] == 'last-generated-id' then
            local above = tonumber(string.match(info[k + 1], '^(%d+)-')) + 1
            if above > epoch then epoch = above end
          end
        end
        id = string.format('%d', epoch) .. '-' .. ARGV[i + 1]
        redis.call('XADD', key, id, unpack(ARGV, i + 3, last))
      end
    else
      redis.call('XADD', key, id, unpack(ARGV, i + 3, last))
    end
  else
    redis.call('XADD', KEYS[4], ARGV[i + 1], unpack(ARGV, i + 3, last))
    if target == 'L' then
      local metaEnd = last + 1 + tonumber(ARGV[last + 1]) * 2
      redis.call('HSET', KEYS[3], unpack(ARGV, last + 2, metaEnd))
      last = metaEnd
    end
  end
  first = false
  i = last + 1
end
redis.call('HSET', KEYS[2], 'ep', epoch, unpack(ARGV, 7, cursorEnd))
if ARGV[2] ~= '0' then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
  redis.call('EXPIRE', KEYS[4], ARGV[2])
  redis.call('EXPIRE', KEYS[5], ARGV[2])
end
return epoch
