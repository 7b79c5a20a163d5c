//! The Lua scripts of a shared room (see `room`): each runs atomically on the room's one
//! hash slot, so that a check and the writes it guards cannot be split by another node.
//!
//! Every call counts: Redis runs each command inside a script as one command
//! (`INFO commandstats`), so the scripts write with one variadic command per key where they
//! can, and the callers ask for what they do not need every time (the holder, the stream's
//! length, the events stream's top) only when they need it (BENCHMARKS.md, issue 21).

/// Every input a node has for one room, in the order its callers sent them, in one call; the
/// owner is woken with the inputs themselves, so that it reads nothing back.
/// KEYS: in, lease. ARGV: node, wake channel, publish command (`PUBLISH`, or `SPUBLISH` on a
/// cluster: the channel shares the room's tag), queue cap ("0": not checked this time), ask
/// the holder ("1": yes), n inputs, then per input: kind, body.
/// Answers {holder, {answer per input}, the stream's length}: the holder is "?" when not
/// asked, "" when nobody holds the lease; it is asked too when nobody heard the wake-up (no
/// owner is listening). Answer 0: in the stream; 2: refused (the stream holds the cap: 503).
/// The wake-up carries `id\nbody` per stored input, in stream order.
pub const INGEST: &str = r"
local cap = tonumber(ARGV[4])
local len = 0
if cap > 0 then len = redis.call('XLEN', KEYS[1]) end
local answers, wake = {}, {}
local i = 7
for _ = 1, tonumber(ARGV[6]) do
  local kind, body = ARGV[i], ARGV[i + 1]
  i = i + 2
  if kind == 'push' and cap > 0 and len >= cap then
    answers[#answers + 1] = 2
  else
    wake[#wake + 1] = redis.call('XADD', KEYS[1], '*', 'k', kind, 'n', ARGV[1], 'b', body)
    wake[#wake + 1] = body
    answers[#answers + 1] = 0
    len = len + 1
  end
end
local heard = 1
if #wake > 0 then heard = redis.call(ARGV[3], ARGV[2], table.concat(wake, '\n')) end
local holder = '?'
if ARGV[5] == '1' or heard == 0 then holder = redis.call('GET', KEYS[2]) or '' end
return {holder, answers, len}
";

/// KEYS: lease, term, events, own. ARGV: node, a holder this node saw gone ("" = none). Takes the
/// lease when nobody holds it, when it still names this node (a room that stopped here and
/// starts again, or this node restarted under the same `store.node_id`), or when it names the
/// node seen gone. The lease has no expiry: it holds while its holder's presence record does.
///
/// A lease won starts a new *term*: the room's term counter goes up (past the events stream's
/// top, whose ids are `<term>-<n>`), and a marker entry `<term>-0` goes into the events stream
/// and into the owner's own input stream. Every commit and every input the owner stores for
/// itself is an entry with an id of its owner's term, and Redis refuses an id below the
/// stream's top: from now on, the commits and own inputs of any earlier owner (one frozen, or
/// cut off, that does not know yet) fail, without a read of the lease (see `commit`). Answers
/// the term when the lease is ours now, else 0.
pub const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if not (holder == false or holder == ARGV[1] or (ARGV[2] ~= '' and holder == ARGV[2])) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
local term = redis.call('INCR', KEYS[2])
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)[1]
if top then
  local ms = tonumber(string.match(top[1], '^(%d+)'))
  if ms >= term then
    term = ms + 1
    redis.call('SET', KEYS[2], string.format('%d', term))
  end
end
local marker = string.format('%d', term) .. '-0'
redis.call('XADD', KEYS[3], marker, 't', ARGV[1])
redis.call('XADD', KEYS[4], marker, 't', ARGV[1])
return term
";

/// KEYS: lease. ARGV: node, the node to give it to. Hands the lease to that node if it is ours
/// (see `handoff`). 1 when handed, else 0.
pub const HANDOFF: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
";

/// KEYS: lease. ARGV: node. Gives the lease up if it is ours (a room that stops here).
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// A checkpoint of the owner's commits (see `commit`): the state, the dedup keys and the member
/// changes of the entries up to `upto` go to the room's state hash, dedup set and member hash,
/// so that the streams can be trimmed and a new owner reads few entries. Fenced by the lease.
/// KEYS: lease, state, seen, members, in, events, own. ARGV: node, core state, applied input,
/// upto (the newest entry it covers), now ms (the dedup keys' score), seen cap ("0": not
/// trimmed this time), input trim id ("" = none), events trim id ("" = none), own input
/// applied, own inputs' trim id ("" = none), then n dedup keys, then n member entries as
/// session/entry pairs, then n members gone.
/// Answers 1 when written, 0 when the lease is not ours.
pub const CHECKPOINT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local function chunked(cmd, key, list)
  for s = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, s, math.min(s + 999, #list)))
  end
end
local i = 11
local list = {}
for _ = 1, tonumber(ARGV[i]) do
  list[#list + 1] = ARGV[5]
  list[#list + 1] = ARGV[i + 1]
  i = i + 1
end
i = i + 1
if #list > 0 then chunked('ZADD', KEYS[3], list) end
if ARGV[6] ~= '0' then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[6]) + 1)) end
list = {}
for _ = 1, tonumber(ARGV[i]) do
  list[#list + 1] = ARGV[i + 1]
  list[#list + 1] = ARGV[i + 2]
  i = i + 2
end
i = i + 1
if #list > 0 then chunked('HSET', KEYS[4], list) end
list = {}
for _ = 1, tonumber(ARGV[i]) do
  list[#list + 1] = ARGV[i + 1]
  i = i + 1
end
if #list > 0 then chunked('HDEL', KEYS[4], list) end
redis.call('HSET', KEYS[2], 'core', ARGV[2], 'applied', ARGV[3], 'upto', ARGV[4], 'own', ARGV[9])
if ARGV[7] ~= '' then redis.call('XTRIM', KEYS[5], 'MINID', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('XTRIM', KEYS[6], 'MINID', ARGV[8]) end
if ARGV[10] ~= '' then redis.call('XTRIM', KEYS[7], 'MINID', ARGV[10]) end
return 1
";

/// Runs `script` with `keys` and `args` (by its hash, loading it when Redis does not know it).
pub async fn run<T: redis::FromRedisValue>(
    script: &redis::Script,
    keys: &[String],
    args: &[String],
    mut conn: crate::store::conn::RedisConn,
) -> redis::RedisResult<T> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(key);
    }
    for arg in args {
        invocation.arg(arg);
    }
    invocation.invoke_async(&mut conn).await
}

/// The scripts, each hashed once per room.
pub struct Scripts {
    pub ingest: redis::Script,
    pub claim: redis::Script,
    pub release: redis::Script,
    pub handoff: redis::Script,
    pub checkpoint: redis::Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            ingest: redis::Script::new(INGEST),
            claim: redis::Script::new(CLAIM),
            release: redis::Script::new(RELEASE),
            handoff: redis::Script::new(HANDOFF),
            checkpoint: redis::Script::new(CHECKPOINT),
        }
    }
}
