//! The Lua scripts of a shared room (see `room`): each runs atomically on the room's one
//! hash slot, so that a check and the writes it guards cannot be split by another node.

/// Every input a node has for one room, in the order its callers sent them, in one call.
/// KEYS: seen, in, lease. ARGV: now ms, node, wake channel, publish command (`PUBLISH`, or
/// `SPUBLISH` on a cluster: the channel shares the room's tag), queue cap (inputs the stream
/// may hold before a push is refused), n inputs, then per input: seqid key ("" = none), kind,
/// body. Answers {owner, {answer per input}}: 0 in the stream, 1 a seqid seen before (nothing
/// stored), 2 refused (the room's queue is full: 503).
pub const INGEST: &str = r"
local answers = {}
local stored = 0
local i = 7
for _ = 1, tonumber(ARGV[6]) do
  local seqid, kind, body = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  if kind == 'push' and redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[5]) then
    answers[#answers + 1] = 2
  elseif seqid ~= '' and redis.call('ZADD', KEYS[1], 'NX', ARGV[1], 's|' .. seqid) == 0 then
    answers[#answers + 1] = 1
  else
    redis.call('XADD', KEYS[2], '*', 'k', kind, 'n', ARGV[2], 'b', body)
    answers[#answers + 1] = 0
    stored = stored + 1
  end
end
if stored > 0 then redis.call(ARGV[4], ARGV[3], '1') end
return {redis.call('GET', KEYS[3]) or '', answers}
";

/// KEYS: lease. ARGV: node, ttl ms. Takes the lease when nobody holds it, or when it still
/// names this node (a room that stopped here and starts again, or this node restarted under
/// the same `store.node_id`). 1 when it is ours now, else 0.
pub const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// KEYS: lease. ARGV: node. Gives the lease up if it is ours (a room that stops here).
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// KEYS: lease. ARGV: node, ttl ms. 1 when the lease is ours (and renewed), else 0.
pub const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// KEYS: lease, events, state, seen, in, members. ARGV: node, history_len, seen cap, now ms,
/// core state (without the members), applied id, trim id ("" = none), channel, message
/// ("" = none), n events, publish command (as for INGEST), then seq/exclude/json triples
/// (exclude "" = none), then n released and the released keys, then n member entries and
/// session/entry pairs, then n members gone and their sessions.
/// Answers 1 when committed, 0 when the lease is not ours, -1 when the events stream already
/// holds the first event's seq (nothing written either way: a script that fails half-way
/// keeps what it wrote, so it refuses before the first write).
pub const COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local i = 12
if tonumber(ARGV[10]) > 0 then
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if top and tonumber(string.match(top[1], '^%d+')) >= tonumber(ARGV[i]) then return -1 end
end
for _ = 1, tonumber(ARGV[10]) do
  redis.call('XADD', KEYS[2], 'MAXLEN', '=', ARGV[2], ARGV[i] .. '-1', 'x', ARGV[i + 1], 'e', ARGV[i + 2])
  i = i + 3
end
local released = tonumber(ARGV[i])
i = i + 1
for _ = 1, released do
  redis.call('ZADD', KEYS[4], ARGV[4], 'd|' .. ARGV[i])
  i = i + 1
end
if released > 0 then redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[3]) + 1)) end
local puts = tonumber(ARGV[i])
i = i + 1
for _ = 1, puts do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local dels = tonumber(ARGV[i])
i = i + 1
for _ = 1, dels do
  redis.call('HDEL', KEYS[6], ARGV[i])
  i = i + 1
end
redis.call('HSET', KEYS[3], 'core', ARGV[5], 'applied', ARGV[6])
if ARGV[7] ~= '' then redis.call('XTRIM', KEYS[5], 'MINID', ARGV[7]) end
if ARGV[9] ~= '' then redis.call(ARGV[11], ARGV[8], ARGV[9]) end
return 1
";

/// The scripts, each hashed once per room.
pub struct Scripts {
    pub ingest: redis::Script,
    pub claim: redis::Script,
    pub renew: redis::Script,
    pub release: redis::Script,
    pub commit: redis::Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            ingest: redis::Script::new(INGEST),
            claim: redis::Script::new(CLAIM),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
            commit: redis::Script::new(COMMIT),
        }
    }
}
