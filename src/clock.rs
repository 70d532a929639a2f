//! What time it is, for everything whose behaviour depends on the date: the store's
//! timestamps, the dispatcher's schedule, pacing, backoff and leases, the webhook outbox's
//! retries. A server reads one [`Clock`]: the system's in production, a [`ManualClock`] in
//! tests, which move it forward so an hour's backoff is checked without waiting an hour.
//!
//! Not tokio's paused time: the store does real I/O (a SQLite worker thread, a PostgreSQL
//! socket), and a paused runtime that sees nothing to do jumps to the next timer, which fires
//! the database pool's timeouts while a query is still running.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::domain::{from_millis, to_millis};

#[derive(Clone, Default)]
pub struct Clock {
    /// Milliseconds since the Unix epoch, set by hand; `None`: the system clock.
    manual: Option<Arc<watch::Sender<i64>>>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// Now, truncated to milliseconds so values survive a round trip through the store.
    pub fn now(&self) -> OffsetDateTime {
        from_millis(self.now_ms())
    }

    /// Milliseconds since the Unix epoch: how every time is stored.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            None => to_millis(OffsetDateTime::now_utc()),
            Some(ms) => *ms.borrow(),
        }
    }

    /// Waits until `wait` has passed on this clock.
    pub async fn sleep(&self, wait: Duration) {
        self.sleep_until(self.now_ms().saturating_add(millis(wait)))
            .await
    }

    /// Waits until this clock reads `until_ms` (ms since the Unix epoch) or later.
    pub async fn sleep_until(&self, until_ms: i64) {
        match &self.manual {
            None => {
                let wait = u64::try_from(until_ms - self.now_ms()).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(wait)).await
            }
            Some(ms) => {
                let mut moved = ms.subscribe();
                // The sender lives as long as this clock; an error cannot happen here.
                let _ = moved.wait_for(|now| *now >= until_ms).await;
            }
        }
    }
}

/// A clock that stands still until the test moves it.
#[derive(Clone)]
pub struct ManualClock(Arc<watch::Sender<i64>>);

impl ManualClock {
    pub fn starting_at(at: OffsetDateTime) -> Self {
        Self(Arc::new(watch::Sender::new(to_millis(at))))
    }

    /// The clock to hand to a server.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.0.clone()),
        }
    }

    /// Moves time forward, waking every sleeper whose time has come.
    pub fn advance(&self, by: Duration) {
        self.0.send_modify(|ms| *ms = ms.saturating_add(millis(by)));
    }

    pub fn now(&self) -> OffsetDateTime {
        from_millis(*self.0.borrow())
    }
}

/// A duration in whole milliseconds, as times are stored (saturating).
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_moved_past_their_time() {
        let manual = ManualClock::starting_at(from_millis(1_000_000));
        let clock = manual.clock();
        let mut sleep = std::pin::pin!(clock.sleep(Duration::from_secs(60)));
        assert!(futures::poll!(sleep.as_mut()).is_pending());
        manual.advance(Duration::from_secs(59));
        assert!(futures::poll!(sleep.as_mut()).is_pending(), "woke early");
        manual.advance(Duration::from_secs(1));
        assert!(futures::poll!(sleep.as_mut()).is_ready());
        assert_eq!(clock.now_ms(), 1_060_000);
        assert_eq!(manual.now(), clock.now());
    }
}
