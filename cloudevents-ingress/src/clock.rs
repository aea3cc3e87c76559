//! Time for backoff: the dispatcher sleeps through a [`Clock`], so tests can pause time, see
//! every requested delay, and advance it by hand.

use std::future::Future;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// A source of sleeps.
pub trait Clock: Send + Sync + 'static {
    /// Completes after `d` of this clock's time.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;
}

/// Real time, through tokio's timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

#[derive(Default)]
struct ManualState {
    now: Duration,
    sleepers: Vec<(Duration, oneshot::Sender<()>)>,
    requested: Vec<Duration>,
}

/// A paused clock: sleeps complete only when a test advances time past their deadline. Every
/// requested delay is recorded.
#[derive(Default)]
pub struct ManualClock {
    state: Mutex<ManualState>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Time elapsed on this clock.
    pub fn now(&self) -> Duration {
        self.state.lock().now
    }

    /// Every delay requested so far, in order.
    pub fn requested(&self) -> Vec<Duration> {
        self.state.lock().requested.clone()
    }

    /// How many sleeps are waiting.
    pub fn sleeping(&self) -> usize {
        let mut s = self.state.lock();
        s.sleepers.retain(|(_, tx)| !tx.is_closed());
        s.sleepers.len()
    }

    /// Moves time forward and wakes every sleep whose deadline has passed.
    pub fn advance(&self, d: Duration) {
        let mut s = self.state.lock();
        s.now += d;
        let now = s.now;
        let (due, rest): (Vec<_>, Vec<_>) = s
            .sleepers
            .drain(..)
            .partition(|(deadline, _)| *deadline <= now);
        s.sleepers = rest;
        for (_, tx) in due {
            let _ = tx.send(());
        }
    }

    /// Advances to the earliest pending deadline, if any; returns the step taken.
    pub fn advance_to_next(&self) -> Option<Duration> {
        let step = {
            let s = self.state.lock();
            let now = s.now;
            s.sleepers
                .iter()
                .map(|(d, _)| d.saturating_sub(now))
                .min()?
        };
        self.advance(step);
        Some(step)
    }
}

impl Clock for ManualClock {
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.state.lock();
            s.requested.push(d);
            let deadline = s.now + d;
            if d.is_zero() {
                let _ = tx.send(());
            } else {
                s.sleepers.push((deadline, tx));
            }
        }
        async move {
            let _ = rx.await;
        }
    }
}
