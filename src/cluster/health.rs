//! Whether Redis answers: the `redis` health check, kept by every command
//! on the request path (each runs under [`COMMAND_TIMEOUT`]).

use std::sync::{MutexGuard, PoisonError};
use std::time::Duration;

use super::{Cluster, ClusterError};

/// Longest wait for one command on the request path (a webhook's append).
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// The `redis` health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Reachable, and this node is caught up with the shared stream.
    pub reachable: bool,
    /// One line for `/api/security/health` (URL masked).
    pub detail: String,
}

impl Cluster {
    /// The `redis` health check.
    pub fn health(&self) -> Health {
        let h = self.health_state().clone();
        if h.reachable {
            let (epoch, head) = self.inner.parts.hub.position();
            Health {
                reachable: true,
                detail: format!(
                    "{}: shared stream at seq {head}, epoch {epoch}",
                    self.inner.redis.masked_url(),
                ),
            }
        } else {
            h
        }
    }

    /// Runs `fut` with [`COMMAND_TIMEOUT`], mapping driver errors.
    pub(super) async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.inner.redis.error(&e).into()),
            Err(_) => Err(ClusterError::Timeout {
                url: self.inner.redis.masked_url().to_owned(),
                ms: COMMAND_TIMEOUT.as_millis(),
            }),
        }
    }

    pub(super) fn note_error(&self, error: &str) {
        let mut h = self.health_state();
        if h.reachable {
            tracing::warn!(error = %error, "redis unreachable: serving with node-local state, webhooks answered 503");
        }
        *h = Health {
            reachable: false,
            detail: format!(
                "{error}; serving with node-local limits, webhooks answered 503 until it is back"
            ),
        };
    }

    fn health_state(&self) -> MutexGuard<'_, Health> {
        self.inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks Redis reachable; true if it was not.
    pub(super) fn note_ok(&self) -> bool {
        let mut h = self.health_state();
        if h.reachable {
            return false;
        }
        tracing::info!(redis = %self.inner.redis.masked_url(), "redis reachable again");
        h.reachable = true;
        true
    }
}
