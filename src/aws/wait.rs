//! `wait_until`: polls a status function on a backoff schedule until it says done, the timeout passes, or Terraform
//! stops the provider. A waiter knows nothing of the object it waits for; the status function does.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// First pause between polls; the emulator and most AWS state changes answer within a few of these.
pub const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Longest pause between polls: the provider notices a change within this (plus one call) of AWS making it, and a
/// waiter makes at most 40 describes a minute, so Terraform's ten parallel waits stay under EC2's describe refill
/// rate (20 a second) and ELBv2's; see docs/benchmarks.md for the measured notice latency.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_millis(1500);

/// The pause after the pause `interval`: grows by half up to `MAX_POLL_INTERVAL`.
fn next_interval(interval: Duration) -> Duration {
    (interval * 3 / 2).min(MAX_POLL_INTERVAL)
}

/// What one poll found.
pub enum Status<T> {
    Done(T),
    /// Not there yet; the text says where it is ("optimizing", "pending 40%").
    Pending(String),
}

/// Why a wait ended without the object reaching the wanted state.
#[derive(Debug)]
pub enum WaitError {
    /// The status function failed (the object went into a failed state, or an AWS error that retries did not fix).
    Failed(String),
    TimedOut { waited: Duration, last_status: String },
    Cancelled { last_status: String },
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Failed(e) => write!(f, "{e}"),
            WaitError::TimedOut { waited, last_status } => write!(
                f,
                "still {last_status:?} after {}; raise the `timeouts` of the resource if this is expected, then apply again",
                humantime::format_duration(Duration::from_secs(waited.as_secs()))
            ),
            WaitError::Cancelled { last_status } => write!(f, "stopped by Terraform while {last_status:?}; apply again to continue"),
        }
    }
}

/// `.during("waiting for vol-1 to attach")?` on a wait's (or any local step's) result: the failure as text that says
/// what was being done, as `.op()` names a failed AWS call.
pub trait During<T> {
    fn during(self, what: impl std::fmt::Display) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> During<T> for Result<T, E> {
    fn during(self, what: impl std::fmt::Display) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Polls `status` until it returns `Done`, backing off from `FIRST_POLL_INTERVAL` to `MAX_POLL_INTERVAL`.
pub async fn wait_until<T, F, Fut>(cancel: &CancellationToken, timeout: Duration, mut status: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Status<T>, String>>,
{
    let started = Instant::now();
    let mut interval = FIRST_POLL_INTERVAL;
    let mut last_status = String::from("not checked yet");
    loop {
        let polled = tokio::select! {
            r = status() => r,
            _ = cancel.cancelled() => return Err(WaitError::Cancelled { last_status }),
        };
        match polled.map_err(WaitError::Failed)? {
            Status::Done(t) => return Ok(t),
            Status::Pending(s) => last_status = s,
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(WaitError::TimedOut { waited, last_status });
        }
        let pause = interval.min(timeout - waited);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = cancel.cancelled() => return Err(WaitError::Cancelled { last_status }),
        }
        interval = next_interval(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_schedule_backs_off_to_a_pause_short_enough_to_notice_within_two_seconds() {
        let mut schedule = vec![FIRST_POLL_INTERVAL];
        while schedule.len() < 40 {
            schedule.push(next_interval(*schedule.last().unwrap()));
        }
        assert!(schedule.windows(2).all(|w| w[1] >= w[0]), "never speeds up: {schedule:?}");
        assert!(schedule.iter().all(|p| *p <= MAX_POLL_INTERVAL) && MAX_POLL_INTERVAL < Duration::from_secs(2));
        // Steady state: one poll per MAX_POLL_INTERVAL, at most 40 a minute.
        let first_minute = schedule.iter().scan(Duration::ZERO, |t, p| { *t += *p; Some(*t) }).take_while(|t| *t <= Duration::from_secs(60)).count();
        assert!(first_minute <= 45, "{first_minute} polls in the first minute");
    }

    #[tokio::test(start_paused = true)]
    async fn waits_until_done_then_times_out_and_honours_cancellation() {
        let polls = AtomicU32::new(0);
        let token = CancellationToken::new();
        let done = wait_until(&token, Duration::from_secs(60), || async {
            let n = polls.fetch_add(1, Ordering::SeqCst);
            Ok(if n >= 3 { Status::Done(n) } else { Status::Pending(format!("poll {n}")) })
        })
        .await
        .unwrap();
        assert_eq!(done, 3);

        let never = wait_until::<(), _, _>(&token, Duration::from_secs(5), || async { Ok(Status::Pending("creating".into())) }).await;
        assert!(matches!(never, Err(WaitError::TimedOut { ref last_status, .. }) if last_status == "creating"));

        token.cancel();
        let stopped = wait_until::<(), _, _>(&token, Duration::from_secs(5), || async { Ok(Status::Pending("x".into())) }).await;
        assert!(matches!(stopped, Err(WaitError::Cancelled { .. })));
    }
}
