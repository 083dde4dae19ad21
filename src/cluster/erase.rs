//! Personal-data erasure in the shared stream (see [`crate::subject`]).
//!
//! Stream entries cannot be edited, and deleting them would leave seq gaps
//! that every node resets its clients over. So the stream is rebuilt in one
//! script: every entry copied under its own id into a new key — the entries
//! about the subject with their event redacted as the hub redacts its frames
//! — the last generated id carried over, and the new key renamed over the old.
//! A reader blocked on the stream continues from its last id.

use std::collections::HashMap;

use super::{Cluster, ClusterError, scripts};

/// Temporary key the stream is rebuilt in.
const REBUILD: &str = "{warden}:events:erase";

/// KEYS: events, rebuild. ARGV: pairs of (entry id, redacted `ev`).
/// Returns how many entries were rewritten.
const ERASE: &str = r"
local repl = {}
for i = 1, #ARGV, 2 do repl[ARGV[i]] = ARGV[i + 1] end
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
if #entries == 0 then return 0 end
local last = nil
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
redis.call('DEL', KEYS[2])
local n = 0
for _, e in ipairs(entries) do
  local id, f = e[1], e[2]
  local r = repl[id]
  if r then
    for j = 1, #f, 2 do
      if f[j] == 'ev' then f[j + 1] = r; n = n + 1 end
    end
  end
  redis.call('XADD', KEYS[2], id, unpack(f))
end
if last then redis.call('XSETID', KEYS[2], last) end
redis.call('RENAME', KEYS[2], KEYS[1])
return n
";

impl Cluster {
    /// Rewrites the shared stream's entries about the subject (`needles`:
    /// its identity and hash); returns how many.
    pub async fn erase_subject(&self, needles: &[String]) -> Result<u64, ClusterError> {
        let mut conn = self.inner.conn.clone();
        let entries: Vec<(String, HashMap<String, String>)> = self
            .timed(
                redis::cmd("XRANGE")
                    .arg(scripts::EVENTS)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut conn),
            )
            .await?;
        let erase = redis::Script::new(ERASE);
        let mut script = erase.prepare_invoke();
        script.key(scripts::EVENTS).key(REBUILD);
        let mut any = false;
        for (id, fields) in &entries {
            let Some(ev) = fields.get("ev") else {
                continue;
            };
            if !needles
                .iter()
                .any(|n| !n.is_empty() && ev.contains(n.as_str()))
            {
                continue;
            }
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(ev) else {
                continue;
            };
            if crate::hub::erase::redact_json(&mut v, needles) {
                script.arg(id).arg(v.to_string());
                any = true;
            }
        }
        if !any {
            return Ok(0);
        }
        self.timed(script.invoke_async(&mut conn)).await
    }
}
