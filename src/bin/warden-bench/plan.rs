//! What a run measures and how big: the full plan (issue 11's scenarios at
//! the sizes of the Node peer's BASELINE.md) and the `--quick` one.
//!
//! Invariant: every step has fixed sizes and a timeout, so a run is bounded
//! in count and time whatever the servers do.

use std::time::Duration;

use anyhow::Result;

use crate::fanout::SlowPlan;
use crate::report::Figs;
use crate::scenario::{self, Ctx};
use crate::server::Target;
use crate::transport::Via;

/// One scenario with its sizes.
#[derive(Clone, Debug)]
pub enum Step {
    /// Webhook ingest: `concurrency` in flight for `secs`.
    Flood {
        /// Requests in flight.
        concurrency: usize,
        /// Duration, seconds.
        secs: u64,
    },
    /// One stream of `events` webhooks at `rate`/s to `subs` subscribers.
    Fanout {
        /// Subscribers.
        subs: usize,
        /// Webhooks sent.
        events: u64,
        /// Webhooks per second.
        rate: f64,
        /// Subscribers and webhooks over TLS (HTTP/1.1), Warden only; the
        /// step's plain twin runs before it and the table shows the ratio
        /// of their delivery p99 (issue 23).
        tls: bool,
    },
    /// `conns` idle subscribers held `hold` seconds.
    Idle {
        /// Connections.
        conns: usize,
        /// Hold, seconds.
        hold: u64,
    },
    /// `conns` idle streams over one transport path, held `hold` seconds.
    Transport {
        /// The path.
        via: Via,
        /// Streams.
        conns: usize,
        /// Hold, seconds.
        hold: u64,
    },
    /// `conns` authenticated connects.
    Storm {
        /// Connections.
        conns: usize,
    },
    /// Fan-out to `subs` in alternating phases without and with a stalled client.
    Slow {
        /// Subscribers (besides the stalled one).
        subs: usize,
        /// Phases and their sizes.
        plan: SlowPlan,
    },
}

impl Step {
    /// The kind, as `--scenarios` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Flood { .. } => "flood",
            Step::Fanout { .. } => "fanout",
            Step::Idle { .. } => "idle",
            Step::Transport { .. } => "transport",
            Step::Storm { .. } => "storm",
            Step::Slow { .. } => "slow",
        }
    }

    /// Whether `target` takes part: the floor only writes events, so it
    /// runs the fan-out steps only — not the slow consumer, whose unmeasured
    /// events at 50/s to 10 000 it cannot write before the measured ones
    /// (it writes every event on its own), so its phases would measure its
    /// backlog.
    pub fn runs_on(&self, target: Target) -> bool {
        match self {
            Step::Transport { .. } | Step::Fanout { tls: true, .. } => target == Target::Warden,
            _ => target != Target::Floor || matches!(self, Step::Fanout { .. }),
        }
    }

    /// Whether Warden terminates TLS for this step.
    pub fn tls(&self) -> bool {
        match self {
            Step::Transport { via, .. } => via.tls(),
            Step::Fanout { tls, .. } => *tls,
            _ => false,
        }
    }

    /// The row label in the table.
    pub fn title(&self) -> String {
        match self {
            Step::Flood { concurrency, secs } => {
                format!("webhook ingest ({concurrency} in flight, {secs} s)")
            }
            Step::Fanout {
                subs,
                events,
                rate,
                tls: false,
            } => format!("fan-out to {subs} ({events} events at {rate}/s)"),
            Step::Fanout {
                subs,
                events,
                rate,
                tls: true,
            } => format!("fan-out to {subs} over TLS HTTP/1.1 ({events} events at {rate}/s)"),
            Step::Idle { conns, hold } => format!("idle {conns} connections ({hold} s hold)"),
            Step::Transport { via, conns, hold } => {
                format!("idle {conns} streams, {} ({hold} s hold)", via.label())
            }
            Step::Storm { conns } => format!("connection storm ({conns} connects)"),
            Step::Slow { subs, plan } => format!(
                "slow consumer ({subs} subscribers; {}× without and with, {} events at {}/s per phase)",
                plan.pairs, plan.events, plan.rate
            ),
        }
    }

    /// The plain twin of a fan-out over TLS: its delivery p99 is the TLS
    /// step's yardstick.
    pub fn plain_twin(&self) -> Option<Step> {
        match *self {
            Step::Fanout {
                subs,
                events,
                rate,
                tls: true,
            } => Some(Step::Fanout {
                subs,
                events,
                rate,
                tls: false,
            }),
            _ => None,
        }
    }

    /// The most this step may take (connects, events, drain, slack).
    pub fn timeout(&self) -> Duration {
        let secs = match self {
            Step::Flood { secs, .. } => secs + 30,
            Step::Fanout {
                subs, events, rate, ..
            } => (*events as f64 / rate) as u64 + *subs as u64 / 500 + 60,
            Step::Idle { conns, hold } | Step::Transport { conns, hold, .. } => {
                hold + *conns as u64 / 100 + 60
            }
            Step::Storm { conns } => *conns as u64 / 200 + 60,
            Step::Slow { subs, plan } => plan.max_secs(10) + *subs as u64 / 500 + 90,
        };
        Duration::from_secs(secs)
    }

    /// Runs the step against `ctx`'s fresh server.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Result<Figs> {
        match *self {
            Step::Flood { concurrency, secs } => {
                scenario::flood(ctx, concurrency, Duration::from_secs(secs)).await
            }
            Step::Fanout {
                subs, events, rate, ..
            } => crate::fanout::fanout(ctx, subs, events, rate).await,
            Step::Idle { conns, hold } => {
                scenario::idle(ctx, conns, Duration::from_secs(hold)).await
            }
            Step::Transport { via, conns, hold } => {
                crate::transport::idle(ctx, via, conns, Duration::from_secs(hold)).await
            }
            Step::Storm { conns } => scenario::storm(ctx, conns).await,
            Step::Slow { subs, plan } => crate::fanout::slow(ctx, subs, plan).await,
        }
    }
}

/// The steps of a run.
pub struct Plan {
    /// In order.
    pub steps: Vec<Step>,
    /// Connects in flight at once.
    pub inflight: usize,
    /// How long deliveries may trail the last webhook before they count as lost.
    pub drain: Duration,
}

impl Plan {
    /// The full or quick plan, `--max` adding the machine-limit idle step,
    /// `streams` resizing the transport steps, filtered to `kinds` when given.
    pub fn new(
        quick: bool,
        max: bool,
        max_conns: usize,
        hold: Option<u64>,
        streams: Option<usize>,
        kinds: &[String],
    ) -> Self {
        let mut steps = if quick {
            quick_steps(hold.unwrap_or(2))
        } else {
            full_steps(hold.unwrap_or(30), max.then_some(max_conns))
        };
        if let Some(n) = streams {
            for step in &mut steps {
                if let Step::Transport { conns, .. } = step {
                    *conns = n;
                }
            }
        }
        if !kinds.is_empty() {
            steps.retain(|s| kinds.iter().any(|k| k == s.kind()));
        }
        Self {
            steps,
            inflight: if quick { 64 } else { 256 },
            drain: Duration::from_secs(if quick { 5 } else { 10 }),
        }
    }
}

/// Seconds, not minutes: small counts, short phases.
fn quick_steps(hold: u64) -> Vec<Step> {
    let mut steps = vec![
        Step::Flood {
            concurrency: 16,
            secs: 2,
        },
        Step::Fanout {
            subs: 1,
            events: 20,
            rate: 50.0,
            tls: false,
        },
        Step::Fanout {
            subs: 100,
            events: 20,
            rate: 50.0,
            tls: false,
        },
    ];
    steps.extend(tls_pair(1000, 10, 5.0));
    steps.push(Step::Idle { conns: 200, hold });
    steps.extend(transport_steps(200, hold));
    steps.extend([
        Step::Storm { conns: 300 },
        Step::Slow {
            subs: 50,
            plan: SlowPlan {
                events: 20,
                rate: 50.0,
                pairs: 1,
                fill: 64,
            },
        },
    ]);
    steps
}

/// One event at a time to `subs` subscribers over plain HTTP/1.1, then
/// the same over TLS HTTP/1.1 (issue 23: TLS p99 ≤ 1.3× plain).
fn tls_pair(subs: usize, events: u64, rate: f64) -> [Step; 2] {
    [false, true].map(|tls| Step::Fanout {
        subs,
        events,
        rate,
        tls,
    })
}

/// Idle streams over every transport path (issue 23).
fn transport_steps(conns: usize, hold: u64) -> impl Iterator<Item = Step> {
    Via::ALL
        .into_iter()
        .map(move |via| Step::Transport { via, conns, hold })
}

/// Issue 11's sizes; the sustained fan-out to 10 000 offers 500 000 deliveries/s.
fn full_steps(hold: u64, max_conns: Option<usize>) -> Vec<Step> {
    let mut steps = vec![
        Step::Flood {
            concurrency: 64,
            secs: 10,
        },
        Step::Fanout {
            subs: 1,
            events: 200,
            rate: 50.0,
            tls: false,
        },
        Step::Fanout {
            subs: 1000,
            events: 200,
            rate: 50.0,
            tls: false,
        },
        // One event at a time (each delivered to all long before the next):
        // issue 11's "one event to 10 000 subscribers" latency.
        Step::Fanout {
            subs: 10_000,
            events: 20,
            rate: 2.0,
            tls: false,
        },
        // The same over TLS (issue 23); its plain twin is the step above.
        Step::Fanout {
            subs: 10_000,
            events: 20,
            rate: 2.0,
            tls: true,
        },
        // A sustained stream: deliveries/s, and latency under that load.
        Step::Fanout {
            subs: 10_000,
            events: 100,
            rate: 50.0,
            tls: false,
        },
        Step::Idle {
            conns: 10_000,
            hold,
        },
    ];
    steps.extend(transport_steps(10_000, hold));
    if let Some(conns) = max_conns {
        steps.push(Step::Idle { conns, hold });
    }
    steps.push(Step::Storm { conns: 5000 });
    // Issue 4: "one stalled client among 10 000 adds < 1 ms to the others'
    // p99": one event at a time, as the fan-out to 10 000 above, four
    // phases a side; 64 unmeasured events (≈ 24 kB) before each phase
    // close the stalled client's 4 KiB receive window.
    steps.push(Step::Slow {
        subs: 10_000,
        plan: SlowPlan {
            events: 10,
            rate: 2.0,
            pairs: 4,
            fill: 64,
        },
    });
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tls_fanout_runs_after_its_plain_twin_on_warden_only() {
        for quick in [true, false] {
            let steps = Plan::new(quick, false, 0, None, None, &[]).steps;
            let tls: Vec<usize> = (0..steps.len())
                .filter(|&i| steps[i].plain_twin().is_some())
                .collect();
            assert!(!tls.is_empty(), "quick={quick}: no fan-out over TLS");
            for i in tls {
                let step = &steps[i];
                assert!(step.tls() && step.runs_on(Target::Warden));
                assert!(!step.runs_on(Target::Node) && !step.runs_on(Target::Floor));
                let twin = step.plain_twin().expect("filtered on it").title();
                assert_ne!(twin, step.title());
                assert!(
                    steps[..i].iter().any(|s| s.title() == twin && !s.tls()),
                    "quick={quick}: {twin} does not run before {}",
                    step.title()
                );
            }
        }
    }
}
