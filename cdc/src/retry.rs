//! Retry with exponential backoff, for sinks that fail transiently.

use std::time::Duration;

/// How often and how patiently to retry. Defaults follow the DoSQL guide: 5 attempts, 100 ms
/// doubling up to 30 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, including the first (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay_ms: u64,
    /// Upper bound on any delay.
    pub max_delay_ms: u64,
    /// Factor applied to the delay after each failed attempt (at least 1.0).
    pub backoff_multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 5, initial_delay_ms: 100, max_delay_ms: 30_000, backoff_multiplier: 2.0 }
    }
}

impl RetryPolicy {
    /// The delay to wait after failed attempt number `attempt` (1-based) before the next one.
    pub fn delay_after_attempt(&self, attempt: u32) -> Duration {
        let multiplier = self.backoff_multiplier.max(1.0);
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let delay_ms = (self.initial_delay_ms as f64) * multiplier.powi(exponent);
        let capped =
            if delay_ms.is_finite() { delay_ms.min(self.max_delay_ms as f64) } else { self.max_delay_ms as f64 };
        Duration::from_millis(capped as u64)
    }
}

/// The operation failed on every attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gave up after {attempts} attempts: {last_error}")]
pub struct RetryExhausted<E: std::fmt::Display> {
    /// Attempts made.
    pub attempts: u32,
    /// The error of the last attempt.
    pub last_error: E,
}

/// Runs `operation` (given the 1-based attempt number) until it succeeds or the policy is
/// exhausted, sleeping the backoff delay between attempts on the calling thread.
///
/// ```
/// use walden_cdc::retry::{retry_blocking, RetryPolicy};
/// let policy = RetryPolicy { initial_delay_ms: 1, ..RetryPolicy::default() };
/// let result = retry_blocking(&policy, |attempt| if attempt < 3 { Err("busy") } else { Ok(attempt) });
/// assert_eq!(result.unwrap(), 3);
/// ```
pub fn retry_blocking<T, E: std::fmt::Display>(
    policy: &RetryPolicy,
    mut operation: impl FnMut(u32) -> Result<T, E>,
) -> Result<T, RetryExhausted<E>> {
    retry_with_sleep(policy, &mut operation, std::thread::sleep)
}

/// Like [`retry_blocking`] with a caller-supplied sleep (tests pass a recorder).
pub fn retry_with_sleep<T, E: std::fmt::Display>(
    policy: &RetryPolicy,
    operation: &mut impl FnMut(u32) -> Result<T, E>,
    mut sleep: impl FnMut(Duration),
) -> Result<T, RetryExhausted<E>> {
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match operation(attempt) {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= max_attempts => return Err(RetryExhausted { attempts: attempt, last_error: e }),
            Err(e) => {
                let delay = policy.delay_after_attempt(attempt);
                tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %e, "attempt failed; retrying");
                sleep(delay);
                attempt += 1;
            }
        }
    }
}

/// Async version of [`retry_blocking`], runtime-agnostic: `sleep` returns the future to await
/// between attempts (e.g. `tokio::time::sleep`).
pub async fn retry_async<T, E, Fut, SleepFut>(
    policy: &RetryPolicy,
    mut operation: impl FnMut(u32) -> Fut,
    mut sleep: impl FnMut(Duration) -> SleepFut,
) -> Result<T, RetryExhausted<E>>
where
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
    SleepFut: std::future::Future<Output = ()>,
{
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match operation(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= max_attempts => return Err(RetryExhausted { attempts: attempt, last_error: e }),
            Err(e) => {
                let delay = policy.delay_after_attempt(attempt);
                tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %e, "attempt failed; retrying");
                sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let p = RetryPolicy { max_attempts: 10, initial_delay_ms: 100, max_delay_ms: 1000, backoff_multiplier: 2.0 };
        let delays: Vec<u64> = (1..=6).map(|a| p.delay_after_attempt(a).as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay_after_attempt(u32::MAX).as_millis(), 1000);
    }

    #[test]
    fn gives_up_after_max_attempts_with_the_last_error() {
        let p = RetryPolicy { max_attempts: 3, initial_delay_ms: 10, max_delay_ms: 100, backoff_multiplier: 3.0 };
        let mut slept = Vec::new();
        let mut calls = 0;
        let r: Result<(), _> = retry_with_sleep(
            &p,
            &mut |a| {
                calls += 1;
                Err(format!("fail {a}"))
            },
            |d| slept.push(d.as_millis() as u64),
        );
        let e = r.unwrap_err();
        assert_eq!(e.attempts, 3);
        assert_eq!(e.last_error, "fail 3");
        assert_eq!(calls, 3);
        assert_eq!(slept, vec![10, 30]);
    }

    #[test]
    fn async_retry_succeeds_eventually() {
        let p = RetryPolicy { max_attempts: 4, initial_delay_ms: 1, max_delay_ms: 1, backoff_multiplier: 2.0 };
        let mut sleeps = 0;
        let fut = retry_async(
            &p,
            |a| async move { if a < 4 { Err("no") } else { Ok(a) } },
            |_| {
                sleeps += 1;
                async {}
            },
        );
        assert_eq!(futures::executor::block_on(fut).unwrap(), 4);
        assert_eq!(sleeps, 3);
    }
}
