use super::*;

const WINDOW: Duration = Duration::from_secs(600);

#[test]
fn an_id_is_new_once_then_retry_or_replay() {
    let s = ReplayStore::memory(10);
    let (a, b) = (digest(b"body a"), digest(b"body b"));
    assert_eq!(s.check("EV_1", a, 1_000, WINDOW), Seen::New);
    assert_eq!(s.check("EV_1", a, 2_000, WINDOW), Seen::Retry);
    assert_eq!(s.check("EV_1", b, 3_000, WINDOW), Seen::Replay);
    assert_eq!(s.check("EV_2", b, 3_000, WINDOW), Seen::New);
    assert_eq!(s.len(), 2);
}

#[test]
fn ids_are_remembered_for_the_whole_window_and_then_forgotten() {
    let s = ReplayStore::memory(10);
    let d = digest(b"x");
    let t0 = 1_700_000_000_000;
    assert_eq!(s.check("EV_1", d, t0, WINDOW), Seen::New);
    // One millisecond before the window closes it is still a repeat.
    assert_eq!(s.check("EV_1", d, t0 + 599_999, WINDOW), Seen::Retry);
    // Another id arriving after the window evicts the old one by age.
    assert_eq!(s.check("EV_2", d, t0 + 600_000, WINDOW), Seen::New);
    assert_eq!(s.len(), 1, "EV_1 evicted by age");
    assert_eq!(s.check("EV_1", d, t0 + 600_001, WINDOW), Seen::New);
}

#[test]
fn memory_is_bounded_by_cap_oldest_first() {
    let s = ReplayStore::memory(3);
    let d = digest(b"x");
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        assert_eq!(
            s.check(id, d, i64::try_from(i).expect("small"), WINDOW),
            Seen::New
        );
    }
    assert_eq!(s.len(), 3);
    assert_eq!(s.check("d", d, 10, WINDOW), Seen::Retry);
    assert_eq!(s.check("b", d, 10, WINDOW), Seen::Retry);
    // "a" was the oldest and went first.
    assert_eq!(s.check("a", d, 10, WINDOW), Seen::New);
}

#[test]
fn sqlite_store_survives_a_restart_and_prunes_old_rows() {
    let dir =
        std::env::temp_dir().join(format!("warden-replay-{}-{}", std::process::id(), line!()));
    let path = dir.join("w.db");
    let t0 = 1_700_000_000_000;
    {
        let s = ReplayStore::sqlite(Sqlite::open(&path).expect("open"), 100).expect("store");
        assert_eq!(s.check("EV_old", digest(b"o"), t0, WINDOW), Seen::New);
        assert_eq!(
            s.check("EV_keep", digest(b"k"), t0 + 500_000, WINDOW),
            Seen::New
        );
        // Arrives after EV_old's window: the writer prunes EV_old's row.
        assert_eq!(
            s.check("EV_new", digest(b"n"), t0 + 700_000, WINDOW),
            Seen::New
        );
        s.flush();
    }
    let db = Sqlite::open(&path).expect("reopen");
    let ids: Vec<String> = db
        .with(|c| {
            let mut st = c.prepare("SELECT id FROM webhook_seen ORDER BY seen_ms")?;
            st.query_map([], |r| r.get(0))?.collect()
        })
        .expect("rows");
    assert_eq!(ids, ["EV_keep", "EV_new"]);
    let s = ReplayStore::sqlite(db, 100).expect("reload");
    assert_eq!(
        s.check("EV_keep", digest(b"k"), t0 + 710_000, WINDOW),
        Seen::Retry
    );
    assert_eq!(
        s.check("EV_new", digest(b"other"), t0 + 710_000, WINDOW),
        Seen::Replay
    );
    assert_eq!(
        s.check("EV_fresh", digest(b"f"), t0 + 710_000, WINDOW),
        Seen::New
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sqlite_load_respects_the_cap_newest_kept() {
    let db = Sqlite::in_memory().expect("db");
    {
        let s = ReplayStore::sqlite(db.clone(), 10).expect("store");
        for i in 0..5i64 {
            assert_eq!(
                s.check(&format!("EV_{i}"), digest(b"x"), 1_000 + i, WINDOW),
                Seen::New
            );
        }
        s.flush();
    }
    let s = ReplayStore::sqlite(db, 2).expect("reload");
    assert_eq!(s.len(), 2);
    assert_eq!(s.check("EV_4", digest(b"x"), 2_000, WINDOW), Seen::Retry);
    assert_eq!(s.check("EV_0", digest(b"x"), 2_000, WINDOW), Seen::New);
}
