//! `wait_until`: polls a status function on a backoff schedule until it says done, the timeout passes, or Terraform
//! stops the provider. A waiter knows nothing of the object it waits for; the status function does.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// First pause between polls; the emulator and most AWS state changes answer within a few of these.
pub const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Longest pause between polls.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(10);

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
        interval = (interval * 3 / 2).min(MAX_POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

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
