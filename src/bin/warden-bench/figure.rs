//! The figures a run reports, keyed by type rather than by English label
//! (issue 22): each key knows its row label, how its value is shown (a
//! number with fixed decimals, or text) and which direction is better.
//!
//! Invariant: a label is the table's row name and, after `scenario / `, the
//! JSON key; changing one changes the output format (`tests/it/bench.rs`
//! reads some), so the labels here are the ones the table has always had.

use std::fmt;

use crate::report::Better;
use crate::scenario::Mem;

/// A percentile of a latency distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pct {
    /// The median.
    P50,
    /// The 99th percentile.
    P99,
    /// The largest.
    Max,
}

impl Pct {
    /// The percentile, for [`crate::report::pct_ms`].
    pub fn value(self) -> f64 {
        match self {
            Pct::P50 => 50.0,
            Pct::P99 => 99.0,
            Pct::Max => 100.0,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Pct::P50 => "p50",
            Pct::P99 => "p99",
            Pct::Max => "max",
        }
    }
}

/// Which events of a fan-out step a delivery figure pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phases {
    /// Every event of a plain fan-out.
    All,
    /// The slow-consumer phases without a stalled client.
    Without,
    /// The slow-consumer phases with a stalled client.
    With,
}

impl Phases {
    /// The row-label prefix.
    fn prefix(self) -> &'static str {
        match self {
            Phases::All => "",
            Phases::Without => "without stalled client: ",
            Phases::With => "with stalled client: ",
        }
    }
}

/// What a fan-out delivery figure measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Status counts of the webhooks that carried the events.
    WebhookStatuses,
    /// Those webhooks' response p99.
    WebhookResponseP99,
    /// Deliveries received, expected, duplicated.
    Received,
    /// Whether every expected delivery arrived.
    AllDelivered,
    /// Latency from the webhook's first byte to a subscriber's receipt.
    Latency(Pct),
    /// Deliveries per second over the span they arrived in.
    Rate,
}

/// One figure of one scenario run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// Why the step produced no figures (start, run or timeout).
    Error,
    /// The tail of the log of a server that exited during the run.
    ServerExited,
    /// Connections (streams) established out of those asked for.
    Established,
    /// Status counts of a flood's webhooks or a storm's connects.
    Statuses,
    /// Status counts of the connects before a hold or a fan-out.
    ConnectStatuses,
    /// Streams still open at the end of an idle hold.
    StillOpen,
    /// Connections per second while opening idle streams.
    ConnectingRate,
    /// Streams per second while opening a transport step's streams.
    StreamingRate,
    /// A connection storm's connections per second.
    ConnectRate,
    /// A connection storm's connect latency.
    ConnectLatency(Pct),
    /// Server CPU per storm connection.
    ServerCpuPerConnection,
    /// The generator's CPU seconds during a storm.
    GeneratorCpuS,
    /// Webhooks answered 2xx per second.
    Accepted,
    /// Webhook response latency.
    Latency(Pct),
    /// Server CPU per accepted webhook.
    ServerCpuPerWebhook,
    /// Server CPU during a flood, % of one core.
    ServerCpuPct,
    /// Server RSS at the end of a step.
    ServerRssEnd,
    /// Server peak RSS.
    ServerPeakRss,
    /// Generator CPU during a flood, % of one core.
    GeneratorCpuPct,
    /// A memory or CPU figure of an idle hold.
    Mem(Mem),
    /// Fan-out subscribers connected out of those asked for.
    SubscribersConnected,
    /// Seconds the fan-out subscribers took to connect.
    ConnectPhase,
    /// Server CPU while the fan-out subscribers connect.
    ServerCpuConnectPhase,
    /// Webhook rate × subscribers.
    Offered,
    /// A delivery figure of some of a fan-out step's events.
    Delivery(Phases, Delivery),
    /// Server CPU while the events go out.
    ServerCpuEventPhase,
    /// Generator CPU while the events go out, % of one core.
    GeneratorCpuEventPhase,
    /// Every slow-consumer phase's delivery p99, one side's phases.
    PhaseP99s(Phases),
    /// Pooled delivery p99 with the stalled client minus without.
    P99Difference,
    /// Stalled clients the server cut off.
    StalledCut,
    /// A fan-out over TLS: its delivery p99 ÷ its plain twin's.
    TlsOverPlainP99,
}

/// How a figure's value is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A number with `decimals`, compared in direction `better`.
    Num {
        /// Decimals shown.
        decimals: usize,
        /// Which direction is better (decides the ratio).
        better: Better,
    },
    /// Text (status counts, yes/no, x / y): no ratio.
    Text,
}

const fn num(decimals: usize, better: Better) -> Shape {
    Shape::Num { decimals, better }
}

impl Figure {
    /// How the value is shown.
    pub fn shape(self) -> Shape {
        use Better::{Higher, Lower, Neither};
        use Figure as F;
        match self {
            F::Error
            | F::ServerExited
            | F::Established
            | F::Statuses
            | F::ConnectStatuses
            | F::StillOpen
            | F::SubscribersConnected
            | F::PhaseP99s(_)
            | F::StalledCut => Shape::Text,
            F::ConnectingRate | F::StreamingRate | F::ConnectRate | F::Accepted => num(0, Higher),
            F::ConnectLatency(_) | F::Latency(_) => num(2, Lower),
            F::ServerCpuPerConnection => num(0, Lower),
            F::GeneratorCpuS => num(2, Neither),
            F::ServerCpuPerWebhook => num(1, Lower),
            F::ServerCpuPct | F::GeneratorCpuPct | F::GeneratorCpuEventPhase | F::Offered => {
                num(0, Neither)
            }
            F::ServerRssEnd | F::ServerPeakRss => num(1, Lower),
            F::Mem(m) => num(m.decimals(), Lower),
            F::ConnectPhase | F::ServerCpuConnectPhase | F::ServerCpuEventPhase => num(2, Lower),
            F::Delivery(_, d) => match d {
                Delivery::WebhookStatuses | Delivery::Received | Delivery::AllDelivered => {
                    Shape::Text
                }
                Delivery::WebhookResponseP99 | Delivery::Latency(_) => num(2, Lower),
                Delivery::Rate => num(0, Higher),
            },
            F::P99Difference | F::TlsOverPlainP99 => num(2, Neither),
        }
    }

    /// Which direction is better.
    pub fn better(self) -> Better {
        match self.shape() {
            Shape::Num { better, .. } => better,
            Shape::Text => Better::Neither,
        }
    }
}

/// The row label.
impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Figure as F;
        let fixed = match *self {
            F::Error => "error",
            F::ServerExited => "server exited during the run",
            F::Established => "established / asked",
            F::Statuses => "statuses",
            F::ConnectStatuses => "connect statuses",
            F::StillOpen => "still open at end of hold",
            F::ConnectingRate => "connections/s while connecting",
            F::StreamingRate => "streams/s while connecting",
            F::ConnectRate => "connections/s",
            F::ConnectLatency(p) => return write!(f, "connect {} ms", p.label()),
            F::ServerCpuPerConnection => "server CPU µs per connection",
            F::GeneratorCpuS => "generator CPU s",
            F::Accepted => "accepted webhooks/s (2xx)",
            F::Latency(p) => return write!(f, "latency {} ms", p.label()),
            F::ServerCpuPerWebhook => "server CPU µs per accepted webhook",
            F::ServerCpuPct => "server CPU % of one core",
            F::ServerRssEnd => "server RSS end MB",
            F::ServerPeakRss => "server peak RSS MB",
            F::GeneratorCpuPct => "generator CPU % of one core",
            F::Mem(m) => m.label(),
            F::SubscribersConnected => "subscribers connected",
            F::ConnectPhase => "connect phase s",
            F::ServerCpuConnectPhase => "server CPU s, connect phase",
            F::Offered => "offered deliveries/s (rate × subscribers)",
            F::Delivery(ph, d) => {
                f.write_str(ph.prefix())?;
                return match d {
                    Delivery::WebhookStatuses => f.write_str("webhook statuses"),
                    Delivery::WebhookResponseP99 => f.write_str("webhook response p99 ms"),
                    Delivery::Received => {
                        f.write_str("deliveries received / expected (duplicates)")
                    }
                    Delivery::AllDelivered => f.write_str("all delivered"),
                    Delivery::Latency(p) => write!(f, "delivery {} ms", p.label()),
                    Delivery::Rate => f.write_str("deliveries/s"),
                };
            }
            F::ServerCpuEventPhase => "server CPU s, event phase",
            F::GeneratorCpuEventPhase => "generator CPU % of one core, event phase",
            F::PhaseP99s(ph) => return write!(f, "{}p99 ms of each phase", ph.prefix()),
            F::P99Difference => "p99 with − without, ms (pooled)",
            F::StalledCut => "stalled clients cut off by the server",
            F::TlsOverPlainP99 => "delivery p99, TLS ÷ plain HTTP/1.1 (the step above)",
        };
        f.write_str(fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_labels_read_as_the_table_always_had_them() {
        let cases = [
            (Figure::Latency(Pct::Max), "latency max ms"),
            (Figure::ConnectLatency(Pct::P99), "connect p99 ms"),
            (
                Figure::Delivery(Phases::All, Delivery::Latency(Pct::P50)),
                "delivery p50 ms",
            ),
            (
                Figure::Delivery(Phases::With, Delivery::Rate),
                "with stalled client: deliveries/s",
            ),
            (
                Figure::PhaseP99s(Phases::Without),
                "without stalled client: p99 ms of each phase",
            ),
            (
                Figure::Mem(Mem::PerStreamEnd),
                "bytes per connection, end of hold",
            ),
        ];
        for (fig, label) in cases {
            assert_eq!(fig.to_string(), label);
        }
    }

    #[test]
    fn shapes_carry_decimals_and_direction() {
        assert_eq!(Figure::Accepted.shape(), num(0, Better::Higher));
        assert_eq!(Figure::Mem(Mem::CpuHolding).shape(), num(2, Better::Lower));
        assert_eq!(
            Figure::Mem(Mem::PerStreamConnected).shape(),
            num(0, Better::Lower)
        );
        assert_eq!(
            Figure::Delivery(Phases::Without, Delivery::AllDelivered).shape(),
            Shape::Text
        );
        assert_eq!(Figure::Statuses.better(), Better::Neither);
    }
}
