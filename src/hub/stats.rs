//! The hub's counters for metrics and status.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for metrics and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Open subscriptions.
    pub subscribers: u64,
    /// Events published.
    pub published: u64,
    /// Event frames handed to subscribers (one per subscriber per event).
    pub delivered_frames: u64,
    /// Subscribers cut for falling behind.
    pub slow_consumer_cuts: u64,
    /// `reset` events sent (refused ids, slow consumers, cluster gaps, lost histories).
    pub resets: u64,
    /// Snapshots sent.
    pub snapshots: u64,
    /// Successful resumes.
    pub resumes: u64,
    /// Heartbeat comments sent.
    pub heartbeats: u64,
    /// Transactions (one fsync each) that stored events in the embedded history.
    pub history_commits: u64,
    /// Events stored by them (÷ commits: events sharing one fsync).
    pub history_stored: u64,
    /// Rooms in the snapshot state.
    pub rooms: u64,
    /// Participants in those rooms.
    pub participants: u64,
    /// Running agent jobs in those rooms.
    pub agents: u64,
    /// Seq of the last event published.
    pub last_seq: u64,
}

/// The live counters (relaxed atomics: they are statistics, not synchronisation).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) subscribers: AtomicU64,
    pub(super) published: AtomicU64,
    pub(super) delivered_frames: AtomicU64,
    pub(super) slow_consumer_cuts: AtomicU64,
    pub(super) resets: AtomicU64,
    pub(super) snapshots: AtomicU64,
    pub(super) resumes: AtomicU64,
    pub(super) heartbeats: AtomicU64,
    pub(super) history_commits: AtomicU64,
    pub(super) history_stored: AtomicU64,
}

impl Counters {
    /// A consistent-enough copy of the counters plus the model's figures.
    pub(super) fn read(&self, [rooms, participants, agents]: [u64; 3], last_seq: u64) -> HubStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HubStats {
            subscribers: load(&self.subscribers),
            published: load(&self.published),
            delivered_frames: load(&self.delivered_frames),
            slow_consumer_cuts: load(&self.slow_consumer_cuts),
            resets: load(&self.resets),
            snapshots: load(&self.snapshots),
            resumes: load(&self.resumes),
            heartbeats: load(&self.heartbeats),
            history_commits: load(&self.history_commits),
            history_stored: load(&self.history_stored),
            rooms,
            participants,
            agents,
            last_seq,
        }
    }
}
