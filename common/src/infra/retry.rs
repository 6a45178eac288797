//! Waiting out outages and pacing background loops, in one place: exponential
//! [`Backoff`], [`until_ok`] for a step that must eventually succeed, [`every`] for a
//! periodic task, and [`pause`], the shutdown-aware sleep they are built on.
//!
//! Every long-lived task of the fleet (reconnecting to RabbitMQ, claiming a run while
//! Postgres restarts, sweeping the outbox, announcing a consumer) is one of these shapes;
//! keeping them here means one doubling rule, one cap per kind of wait, and one place
//! where shutdown interrupts a wait.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::shutdown::Shutdown;

/// Waits that double after each failure, up to a cap, and start over after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits of `first`, `2 × first`, … up to `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// For a lost connection (RabbitMQ, a LISTEN connection): 200 ms, doubling to 10 s.
    pub const fn reconnect() -> Self {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(10))
    }

    /// For one statement that failed because Postgres is away: 100 ms, doubling to 10 s.
    pub const fn statement() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// The wait before the next try, which doubles the one after it.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// The wait [`next_wait`](Self::next_wait) would give, without moving on (for logs).
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Back to the first wait, after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Sleeps for `wait` unless `shutdown` comes first. True when the whole wait passed,
/// false on shutdown (the caller stops).
pub async fn pause(wait: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.cancelled() => false,
    }
}

/// Runs `step` until it returns `Ok`, waiting `backoff` between tries and logging each
/// failure as a warning that names `what`. `None` when `shutdown` came first.
pub async fn until_ok<T, E, F, Fut>(
    what: &str,
    backoff: Backoff,
    shutdown: &Shutdown,
    step: F,
) -> Option<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retrying(what, backoff, Some(shutdown), step).await
}

/// [`until_ok`] that keeps going through shutdown: for a run's result, which must be in
/// Postgres before its message is acked (if the process is killed meanwhile, the message
/// is redelivered and the run is not lost).
pub async fn until_ok_even_at_shutdown<T, E, F, Fut>(what: &str, backoff: Backoff, step: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match retrying(what, backoff, None, step).await {
        Some(value) => value,
        None => unreachable!("without a shutdown token only a success ends the retries"),
    }
}

async fn retrying<T, E, F, Fut>(
    what: &str,
    mut backoff: Backoff,
    shutdown: Option<&Shutdown>,
    mut step: F,
) -> Option<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        match step().await {
            Ok(value) => return Some(value),
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in = ?wait, "{what}; retrying");
                match shutdown {
                    Some(shutdown) => {
                        if !pause(wait, shutdown).await {
                            return None;
                        }
                    }
                    None => tokio::time::sleep(wait).await,
                }
            }
        }
    }
}

/// Runs `tick` now and then every `interval` (measured from the end of the previous
/// tick) until `shutdown`. A tick that fails logs and returns; the next one comes on
/// time regardless.
pub async fn every<F, Fut>(interval: Duration, shutdown: &Shutdown, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    while !shutdown.is_cancelled() {
        tick().await;
        if !pause(interval, shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_starts_over_after_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u64> = (0..5).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.peek(), Duration::from_millis(100));
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }

    fn quick() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(4))
    }

    #[tokio::test]
    async fn until_ok_retries_until_the_step_succeeds() {
        let mut tries = 0;
        let got = until_ok_even_at_shutdown("flaky step", quick(), || {
            tries += 1;
            let this = tries;
            async move { if this < 4 { Err("down") } else { Ok(this) } }
        })
        .await;
        assert_eq!(got, 4);
    }

    #[tokio::test]
    async fn until_ok_gives_up_at_shutdown() {
        let shutdown = Shutdown::new();
        let mut tries = 0;
        let got: Option<()> = until_ok("never works", quick(), &shutdown, || {
            tries += 1;
            if tries == 2 {
                shutdown.cancel();
            }
            async { Err::<(), _>("down") }
        })
        .await;
        assert_eq!((got, tries), (None, 2));
    }

    #[tokio::test]
    async fn every_keeps_ticking_until_shutdown() {
        let shutdown = Shutdown::new();
        let mut ticks = 0;
        every(Duration::from_millis(1), &shutdown, || {
            ticks += 1;
            if ticks == 3 {
                shutdown.cancel();
            }
            async {}
        })
        .await;
        assert_eq!(ticks, 3);
    }
}
