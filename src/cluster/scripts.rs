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
/// KEYS: epoch, seq, events, seen:<id>.
/// ARGV: this node's epoch (restored if Redis lost it), this node's head
/// (the seq never goes back below it), MAXLEN, ts, the event's wire JSON,
/// body digest (hex), replay window (ms).
/// Returns `{epoch, seq, 0}` for a new event, `{epoch, 0, 1}` for a retry
/// (same body), `{epoch, 0, 2}` for a replay (another body).
pub(super) const PUBLISH: &str = r"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
local prev = redis.call('GET', KEYS[4])
if prev then
  if prev == ARGV[6] then return {epoch, 0, 1} end
  return {epoch, 0, 2}
end
local floor = tonumber(ARGV[2])
local seq = redis.call('INCR', KEYS[2])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[2], seq)
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'seq', seq, 'ts', ARGV[4], 'ev', ARGV[5])
redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[7])
return {epoch, seq, 0}
";

/// After a reconnect: if Redis lost its data, put back the epoch and make
/// sure the seq never goes back below what this node has seen.
///
/// KEYS: epoch, seq. ARGV: this node's epoch, its head. Returns the epoch.
pub(super) const RESTORE: &str = r"
if not redis.call('GET', KEYS[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
if seq < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
return redis.call('GET', KEYS[1])
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
