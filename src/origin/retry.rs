//! One retry policy for connecting to a remote origin and for a whole sync with one:
//! exponential backoff with jitter, on errors [`crate::Error::is_transient`] says a retry can help.

use std::time::Duration;

#[cfg(test)]
use crate::error::Error;
use crate::error::Result;

/// Runs `op`, and again after a backoff each time it fails with a transient error, up to
/// `retries` more times. A signal ends the waiting with [`crate::Error::Interrupted`]; a warning is
/// logged before each retry.
pub fn retrying<T>(retries: u32, mut op: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 0;
    loop {
        match op() {
            Err(e) if e.is_transient() && attempt < retries => {
                crate::interrupt::check()?;
                let delay = backoff(attempt);
                tracing::warn!(
                    "{e}; retrying in {:.1} s ({} of {retries})",
                    delay.as_secs_f64(),
                    attempt + 1,
                );
                crate::interrupt::sleep(delay)?;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// 1 s, 2 s, 4 s… (at most 60 s), each stretched by up to half again at random, so that many
/// clients of one server do not retry in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.min(6)).min(Duration::from_secs(60));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = f64::from(nanos % 1000) / 2000.0;
    base.mul_f64(1.0 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempt in 0..10 {
            let base = (1u64 << attempt.min(6)).min(60) as f64;
            let d = backoff(attempt).as_secs_f64();
            assert!(d >= base && d <= base * 1.5, "attempt {attempt}: {d}");
        }
    }

    #[test]
    fn a_permanent_error_is_not_retried() {
        let mut calls = 0;
        let result: Result<()> = retrying(3, || {
            calls += 1;
            Err(Error::InvalidInput("x".into()))
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
