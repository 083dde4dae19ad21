//! The rate-limit policies: which limit a request counts against. A leaf
//! shared by the limiters (`limits.rs`) and the per-client slots (`state.rs`).

/// A rate-limit policy; indexes the per-client GCRA slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `/api/*` requests.
    Api = 0,
    /// Webhook deliveries.
    Webhook = 1,
    /// SSE connects.
    Sse = 2,
}

impl Policy {
    /// Number of policies (slots per client).
    pub const COUNT: usize = 3;

    /// The policy name used in the `RateLimit` headers and events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Webhook => "webhook",
            Self::Sse => "sse",
        }
    }
}
