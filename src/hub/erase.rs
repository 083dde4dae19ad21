//! Personal-data erasure and export on the hub's state: history frames, the
//! live room state, and their rows in the journal.
//!
//! A frame about the subject is rewritten, not deleted: same id and seq (so
//! resume stays contiguous and no client sees a gap), its `data` with the
//! subject's `identity` replaced by `[erased]`, the display `name` emptied,
//! an `agent_identity` dropped, and any other string that still contains the
//! identity or its hash replaced by `[erased]`. In the room state the
//! subject's sessions are removed (a fresh snapshot does not show them).

use bytes::Bytes;
use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::Value;

use super::snapshot::{Room, Rooms};

/// What replaces an erased identity or string.
pub const ERASED: &str = "[erased]";

/// What an erasure changed in the hub.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HubErasure {
    /// History frames rewritten (on disk, or in memory for a hub without a journal).
    pub history_frames: u64,
    /// Live rooms whose state changed (sessions removed, agent identity dropped).
    pub rooms: u64,
}

/// What the hub holds about a subject.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HubExport {
    /// The subject's live sessions, each with its room.
    pub room_state: Vec<Value>,
    /// The history frames that mention it (their `data`), oldest first.
    pub history: Vec<Value>,
}

/// Needles at least this long are also looked for inside other strings; a
/// shorter identity (`"a"`) is matched only where it is a whole field, or it
/// would redact every string that happens to contain it.
pub const MIN_SUBSTRING: usize = 8;

fn matches(s: &str, needles: &[String]) -> bool {
    needles
        .iter()
        .any(|n| n.len() >= MIN_SUBSTRING && s.contains(n.as_str()))
}

fn is_needle(s: &str, needles: &[String]) -> bool {
    needles.iter().any(|n| n == s)
}

/// Redacts the subject in `v`; true if anything changed.
pub fn redact_json(v: &mut Value, needles: &[String]) -> bool {
    match v {
        Value::Object(map) => {
            let mut changed = false;
            if map
                .get("identity")
                .and_then(Value::as_str)
                .is_some_and(|i| is_needle(i, needles))
            {
                map.insert("identity".into(), Value::String(ERASED.into()));
                if map.contains_key("name") {
                    map.insert("name".into(), Value::String(String::new()));
                }
                changed = true;
            }
            if map
                .get("agent_identity")
                .and_then(Value::as_str)
                .is_some_and(|i| is_needle(i, needles))
            {
                map.remove("agent_identity");
                changed = true;
            }
            for child in map.values_mut() {
                changed |= redact_json(child, needles);
            }
            changed
        }
        Value::Array(items) => {
            // Every item, not only up to the first change.
            let mut changed = false;
            for item in items {
                changed |= redact_json(item, needles);
            }
            changed
        }
        Value::String(s) if matches(s, needles) => {
            *s = ERASED.into();
            true
        }
        _ => false,
    }
}

/// Splits an SSE event frame into its head (`id:` and `event:` lines, up to
/// and including `data: `) and its JSON.
fn split_frame(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    const DATA: &[u8] = b"data: ";
    let at = bytes.windows(DATA.len()).position(|w| w == DATA)? + DATA.len();
    let json = bytes[at..].strip_suffix(b"\n\n")?;
    Some((&bytes[..at], json))
}

/// The frame's `data` JSON, when it parses.
pub fn frame_data(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(split_frame(bytes)?.1).ok()
}

fn bytes_match(bytes: &[u8], needles: &[String]) -> bool {
    needles
        .iter()
        .any(|n| !n.is_empty() && bytes.windows(n.len()).any(|w| w == n.as_bytes()))
}

fn bytes_match_long(bytes: &[u8], needles: &[String]) -> bool {
    let long: Vec<String> = needles
        .iter()
        .filter(|n| n.len() >= MIN_SUBSTRING)
        .cloned()
        .collect();
    bytes_match(bytes, &long)
}

/// The frame rewritten without the subject; `None` when it does not mention it.
pub fn redact_frame(bytes: &[u8], needles: &[String]) -> Option<Bytes> {
    if !bytes_match(bytes, needles) {
        return None;
    }
    let rebuilt = split_frame(bytes).and_then(|(head, json)| {
        let mut data: Value = serde_json::from_slice(json).ok()?;
        if !redact_json(&mut data, needles) {
            return Some(Vec::new());
        }
        let mut out = head.to_vec();
        serde_json::to_writer(&mut out, &data).ok()?;
        out.extend_from_slice(b"\n\n");
        Some(out)
    });
    let out = match rebuilt {
        // A short needle that only appeared inside other text: nothing to do.
        Some(out) if out.is_empty() => return None,
        // The head (id, event name) is Warden's own text; if it still holds a
        // needle (an 8-hex hash inside an epoch-seq id), the frame becomes a comment.
        Some(out) if !bytes_match_long(&out, needles) => out,
        _ => b": erased\n\n".to_vec(),
    };
    Some(Bytes::from(out))
}

/// The publish time (Unix ms) an event frame carries; `None` for other frames.
pub fn frame_time_ms(bytes: &[u8]) -> Option<i64> {
    frame_data(bytes)?.get("timestamp")?.as_i64()
}

/// True when the frame was published before `before_ms` (a frame with no
/// time — a redacted comment — goes with its neighbours).
pub(super) fn expired(bytes: &[u8], before_ms: i64) -> bool {
    frame_time_ms(bytes).is_none_or(|t| t < before_ms)
}

/// Deletes the journal's oldest history rows published before `before_ms`
/// (only a prefix, so what stays is still a consecutive run). Returns how many.
pub(super) fn expire_history_rows(tx: &Connection, before_ms: i64) -> rusqlite::Result<u64> {
    let mut last = None;
    {
        let mut stmt = tx.prepare("SELECT seq, frame FROM hub_history ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let frame: Vec<u8> = r.get(1)?;
            if !expired(&frame, before_ms) {
                break;
            }
            last = Some(r.get::<_, i64>(0)?);
        }
    }
    match last {
        Some(seq) => tx
            .execute("DELETE FROM hub_history WHERE seq <= ?1", [seq])
            .map(|n| n as u64),
        None => Ok(0),
    }
}

/// Rewrites the journal's history rows that mention the subject; returns how many.
pub(super) fn erase_history_rows(tx: &Connection, needles: &[String]) -> rusqlite::Result<u64> {
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut stmt = tx.prepare("SELECT seq, frame FROM hub_history ORDER BY seq")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut n = 0;
    let mut update = tx.prepare("UPDATE hub_history SET frame = ?1 WHERE seq = ?2")?;
    for (seq, frame) in rows {
        if let Some(new) = redact_frame(&frame, needles) {
            update.execute(params![&new[..], seq])?;
            n += 1;
        }
    }
    Ok(n)
}

/// The history rows of a journal that mention the subject (for an export with no server running).
pub(super) fn history_rows_about(
    conn: &Connection,
    needles: &[String],
) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare("SELECT frame FROM hub_history ORDER BY seq")?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for frame in rows {
        let frame = frame?;
        if redact_frame(&frame, needles).is_some()
            && let Some(data) = frame_data(&frame)
        {
            out.push(data);
        }
    }
    Ok(out)
}

/// The subject's sessions in `rooms`, each as `{room: {sid, name}, participant}`.
pub(super) fn sessions_about<'a>(
    rooms: impl Iterator<Item = &'a Room>,
    needles: &[String],
) -> Vec<Value> {
    let mut out = Vec::new();
    for room in rooms {
        for v in room.about(needles) {
            out.push(v);
        }
    }
    out
}

/// Erases the subject from a journal's database with no server running:
/// history rows and room rows, in one transaction. The caller scrubs the file.
pub fn erase_offline(conn: &mut Connection, needles: &[String]) -> rusqlite::Result<HubErasure> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if !has_tables(&tx)? {
        return Ok(HubErasure::default());
    }
    // A database from before participant rows: the rewrite below splits them.
    tx.execute_batch(super::journal::SCHEMA)?;
    let history_frames = erase_history_rows(&tx, needles)?;
    let rooms = load_rooms(&tx)?;
    let mut rooms = Rooms::restore(rooms, true);
    rooms.erase(needles);
    let rooms = super::journal::write_dirty_rooms(&tx, &mut rooms)?;
    tx.commit()?;
    Ok(HubErasure {
        history_frames,
        rooms,
    })
}

/// What a journal's database holds about the subject, with no server running.
pub fn export_offline(conn: &Connection, needles: &[String]) -> rusqlite::Result<HubExport> {
    if !has_tables(conn)? {
        return Ok(HubExport::default());
    }
    let rooms = load_rooms(conn)?;
    Ok(HubExport {
        room_state: sessions_about(rooms.iter(), needles),
        history: history_rows_about(conn, needles)?,
    })
}

fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('hub_history', 'hub_rooms')",
        [],
        |r| r.get::<_, i64>(0).map(|n| n == 2),
    )
}

fn load_rooms(conn: &Connection) -> rusqlite::Result<Vec<Room>> {
    match super::journal::read_rooms(conn, false) {
        Ok(rooms) => Ok(rooms),
        Err(super::journal::Load::Sqlite(e)) => Err(e),
        // Not strict: unreadable rows were skipped, not reported.
        Err(super::journal::Load::Json(_)) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_frame_keeps_its_id_and_loses_the_identity_name_and_any_mention() {
        let needles = vec!["alice@example.com".to_owned(), "a1b2c3d4".to_owned()];
        let data = json!({"id": "EV_1", "seq": 7, "data": {
            "room": {"name": "room of a1b2c3d4"},
            "participant": {"sid": "PA_1", "identity": "a1b2c3d4", "name": "Alice"},
            "job": {"agent_identity": "a1b2c3d4", "agent_name": "bot"},
            "other": {"identity": "ffffffff", "name": "Bob"}}});
        let frame = format!("id: abcd-7\nevent: participant_joined\ndata: {data}\n\n");
        let out = redact_frame(frame.as_bytes(), &needles).expect("mentions");
        let text = std::str::from_utf8(&out).expect("utf-8");
        assert!(text.starts_with("id: abcd-7\nevent: participant_joined\ndata: "));
        assert!(text.ends_with("\n\n"));
        assert!(
            !text.contains("a1b2c3d4") && !text.contains("Alice"),
            "{text}"
        );
        let v = frame_data(&out).expect("json");
        assert_eq!(v["data"]["participant"]["identity"], ERASED);
        assert_eq!(v["data"]["participant"]["name"], "");
        assert_eq!(v["data"]["other"]["name"], "Bob");
        assert!(v["data"]["job"].get("agent_identity").is_none());
        assert_eq!(v["data"]["room"]["name"], ERASED);
        assert!(redact_frame(b"id: abcd-8\nevent: x\ndata: {}\n\n", &needles).is_none());
    }
}
