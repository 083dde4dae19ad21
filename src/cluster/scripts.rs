//! The Lua scripts that make each shared change atomic, and the key names.
//!
//! Every key carries the `{warden}` hash tag, so all of them live in one slot
//! and the scripts also run on a Redis Cluster. Times are the caller's clock
//! (`now` is an argument), never Redis's, so one [`crate::clock::Clock`]
//! rules every window and tests can move time by hand.

/// The cluster's epoch (the `<epoch>` of every SSE id).
pub(super) const EPOCH: &str = "{warden}:epoch";
/// The last seq assigned.
pub(super) const SEQ: &str = "{warden}:seq";
/// The shared event history (a stream of `seq`, `ts`, `ev`).
pub(super) const EVENTS: &str = "{warden}:events";
/// The deployment pepper shared by all nodes.
pub(super) const PEPPER: &str = "{warden}:pepper";
/// Active lockouts: a sorted set of client → locked-until (Unix ms).
pub(super) const LOCKS: &str = "{warden}:locks";
/// The room reconciler's lease: the id of the node that reconciles rooms
/// with the LiveKit API, expiring unless renewed.
pub(super) const RECONCILER: &str = "{warden}:reconciler";
/// Clients over a shared rate limit: a sorted set of `<policy>|<client>` →
/// refused-until (Unix ms, the end of the window).
pub(super) const RATE_LIMITED: &str = "{warden}:ratelimited";

/// The dedupe key of a webhook event id.
pub(super) fn seen_key(event_id: &str) -> String {
    format!("{{warden}}:seen:{event_id}")
}

/// The failure times of a client (a sorted set scored by Unix ms).
pub(super) fn failures_key(client: &str) -> String {
    format!("{{warden}}:fail:{client}")
}

/// A client's requests under a policy in one fixed window (a counter).
pub(super) fn rate_key(policy: &str, window: i64, client: &str) -> String {
    format!("{{warden}}:rate:{policy}:{window}:{client}")
}

/// Dedupe, seq and append in one step, so an id is remembered only together
/// with its event: a failed append leaves nothing behind and LiveKit's retry
/// (to any node) goes through; a retry after a success is a duplicate.
///
/// Also the first line of defence against Redis losing data: a missing
/// epoch key (Redis restarted empty) or a seq below this node's head
/// (Redis came back with an older state) starts a new epoch — history
/// dropped, seq back to 0 — in the same atomic step, before the event takes
/// its seq, so no seq of the old epoch is ever issued twice. A node whose
/// epoch is not Redis's publishes nothing (`moved`): it moves first.
///
/// KEYS: epoch, seq, events, seen:<id>.
/// ARGV: this node's epoch and head (read together), MAXLEN, ts, the
/// event's wire JSON, body digest (hex), replay window (ms), a fresh epoch
/// to start if Redis lost its data.
/// Returns `{epoch, seq, status, cause}`: status 0 for a new event (under
/// `seq`), 1 for a retry (same body), 2 for a replay (another body), 3 when
/// Redis is in another epoch than this node (nothing done); `cause` is empty
/// or says why this call started a new epoch (`epoch_missing`,
/// `seq_behind`).
pub(super) const PUBLISH: &str = r"
local epoch = redis.call('GET', KEYS[1])
local cause = ''
if not epoch then
  cause = 'epoch_missing'
elseif epoch ~= ARGV[1] then
  return {epoch, 0, 3, ''}
elseif tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then
  cause = 'seq_behind'
end
if cause ~= '' then
  epoch = ARGV[8]
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[2], 0)
  redis.call('SET', KEYS[1], epoch)
end
local prev = redis.call('GET', KEYS[4])
if prev then
  if prev == ARGV[6] then return {epoch, 0, 1, cause} end
  return {epoch, 0, 2, cause}
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'ep', epoch, 'seq', seq, 'ts', ARGV[4], 'ev', ARGV[5])
redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[7])
return {epoch, seq, 0, cause}
";

/// [`PUBLISH`], hashed once: its SHA-1 is the name `EVALSHA` calls it by,
/// and hashing it on every webhook would cost more than the rest of the
/// call's client side.
pub(super) static PUBLISH_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(PUBLISH));

/// The reader's check that Redis still holds what this node has seen (after
/// a reconnect, when idle, and when it read a seq issued twice), and the
/// pepper put back if Redis lost it. Redis lost data if the epoch key is
/// gone, if the seq is below this node's head, or if the stream ends before
/// the last entry this node read (`XADD` ids only grow; trimming never
/// removes the newest); and `conflict` says this node read a seq of this
/// epoch twice with other content. Any of these starts a new epoch (history
/// dropped, seq back to 0) — unless Redis is already in another epoch
/// than this node, which then only has to move to it.
///
/// KEYS: epoch, seq, events, pepper.
/// ARGV: this node's epoch and head (read together), the last stream id it
/// applied (`0-0`: none), a fresh epoch, the pepper, conflict (`1`/`0`).
/// Returns `{epoch, cause}`: cause is empty (nothing lost), `moved` (Redis
/// is in another epoch) or why this call started the new epoch
/// (`epoch_missing`, `seq_conflict`, `seq_behind`, `stream_behind`).
pub(super) const CHECK: &str = r"
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local epoch = redis.call('GET', KEYS[1])
local cause = ''
if not epoch then
  cause = 'epoch_missing'
elseif epoch ~= ARGV[1] then
  cause = 'moved'
elseif ARGV[6] == '1' then
  cause = 'seq_conflict'
elseif tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then
  cause = 'seq_behind'
elseif ARGV[3] ~= '0-0' then
  local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
  if #last == 0 or older(last[1][1], ARGV[3]) then cause = 'stream_behind' end
end
if cause ~= '' and cause ~= 'moved' then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[2], 0)
  redis.call('SET', KEYS[1], epoch)
end
redis.call('SET', KEYS[4], ARGV[5], 'NX')
return {epoch, cause}
";

/// One failed authentication of a client, counted across nodes.
///
/// KEYS: fail:<client>, locks. ARGV: now, window, max failures, lockout
/// (ms), client, a unique member. Returns `{failures, locked_until, newly}`:
/// an active lockout counts nothing (`{0, until, 0}`); reaching the limit
/// locks the client and clears its failures (`{n, until, 1}`).
pub(super) const FAILURE: &str = r"
local now = tonumber(ARGV[1])
local active = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[5]) or '0')
if active > now then return {0, active, 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then
  local locked = now + tonumber(ARGV[4])
  redis.call('ZADD', KEYS[2], locked, ARGV[5])
  redis.call('DEL', KEYS[1])
  return {n, locked, 1}
end
return {n, 0, 0}
";

/// The lockouts active at `now` (and expired ones dropped).
///
/// KEYS: locks. ARGV: now. Returns `[client, until, …]`.
pub(super) const ACTIVE_LOCKS: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
";

/// Adds each node's admitted requests to the cluster's per-window counters
/// and marks the clients now over their limit; then (when asked) reads every
/// active mark — all in one step, so each push is one round trip.
///
/// KEYS: ratelimited, then one counter per item. ARGV: now, read (1/0), most
/// marks returned, then per item: requests, limit, member
/// (`<policy>|<client>`), window end (ms), counter TTL (ms). Returns
/// `[member, until, …]` for the marks active at `now` (or `[]`).
pub(super) const RATE: &str = r"
local now = tonumber(ARGV[1])
for i = 2, #KEYS do
  local a = 4 + (i - 2) * 5
  local total = redis.call('INCRBY', KEYS[i], ARGV[a])
  redis.call('PEXPIRE', KEYS[i], ARGV[a + 4])
  if total > tonumber(ARGV[a + 1]) then
    local untl = tonumber(ARGV[a + 3])
    local cur = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[a + 2]) or '0')
    if cur < untl then redis.call('ZADD', KEYS[1], untl, ARGV[a + 2]) end
  end
end
if ARGV[2] ~= '1' then return {} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, ARGV[3])
";

/// Takes a lease that is free, or renews one this node holds.
///
/// KEYS: the lease. ARGV: this node's id, TTL (ms). Returns 1 when this node
/// holds the lease for the next TTL, 0 when another node does.
pub(super) const LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Gives a lease back if this node holds it (at shutdown: no wait for the TTL).
///
/// KEYS: the lease. ARGV: this node's id. Returns 1 if it was released.
pub(super) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";
