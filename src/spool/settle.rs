//! What a delivery attempt's reply means for its job: the retry policy, as a pure function.

use crate::extension::Reply;
use std::time::Duration;

/// The longest a `Retry-After` is honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What becomes of a job after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Delivered: the job is done. `status` is what said so (`HTTP 200`, `exit 0`).
    Delivered { status: String },
    /// A permanent failure, or no retries left: the job goes to the dead letters and the
    /// connector goes on with the next.
    Dead { status: Option<String>, error: String },
    /// HTTP 410: dead letter, and the connector is disabled until `queue enable`.
    Disabled { reason: String },
    /// A transient failure: the job is tried again at `at_ms` (Unix milliseconds), and the
    /// connector's later jobs wait behind it.
    Retry { at_ms: u64, status: Option<String>, error: String },
}

/// Settle the `attempts`-th attempt of a job (1-based) that got `reply` at `now_ms`.
/// `schedule` is `[spool] retry`: the wait after each transient failure, +-20% by `jitter`
/// (a number in `[0, 1)`); past its end, the job is dead.
pub fn settle(reply: Reply, attempts: u32, schedule: &[Duration], now_ms: u64, jitter: f64) -> Settlement {
    match reply {
        Reply::Accepted { status } => Settlement::Delivered { status },
        Reply::Refused { code, lines } => {
            let error = format!("refused ({code}){}", lines.first().map(|l| format!(": {l}")).unwrap_or_default());
            Settlement::Dead { status: Some(code), error }
        }
        Reply::Gone { reason } => Settlement::Disabled { reason },
        Reply::Failed { reason, status, retry_after } => {
            let Some(wait) = schedule.get(attempts.saturating_sub(1) as usize) else {
                return Settlement::Dead { status, error: format!("gave up after {attempts} attempts: {reason}") };
            };
            let wait = match retry_after {
                Some(after) => after.min(MAX_RETRY_AFTER),
                None => wait.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0)),
            };
            Settlement::Retry { at_ms: now_ms.saturating_add(wait.as_millis() as u64), status, error: reason }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: [Duration; 2] = [Duration::from_secs(10), Duration::from_secs(60)];

    fn failed() -> Reply {
        Reply::Failed { reason: "x answered 503".into(), status: Some("HTTP 503".into()), retry_after: None }
    }

    #[test]
    fn transient_failures_follow_the_schedule_with_jitter_then_die() {
        assert_eq!(
            settle(failed(), 1, &SCHEDULE, 1_000, 0.5),
            Settlement::Retry { at_ms: 11_000, status: Some("HTTP 503".into()), error: "x answered 503".into() }
        );
        let Settlement::Retry { at_ms: early, .. } = settle(failed(), 2, &SCHEDULE, 0, 0.0) else { panic!() };
        let Settlement::Retry { at_ms: late, .. } = settle(failed(), 2, &SCHEDULE, 0, 0.999_999) else { panic!() };
        assert_eq!(early, 48_000);
        assert!((71_999..=72_000).contains(&late), "{late}");
        assert_eq!(
            settle(failed(), 3, &SCHEDULE, 0, 0.5),
            Settlement::Dead {
                status: Some("HTTP 503".into()),
                error: "gave up after 3 attempts: x answered 503".into()
            }
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_day() {
        let asked =
            |secs| Reply::Failed { reason: "429".into(), status: None, retry_after: Some(Duration::from_secs(secs)) };
        assert!(matches!(settle(asked(7), 1, &SCHEDULE, 0, 0.5), Settlement::Retry { at_ms: 7_000, .. }));
        assert!(matches!(settle(asked(1 << 40), 1, &SCHEDULE, 0, 0.5), Settlement::Retry { at_ms: 86_400_000, .. }));
    }

    #[test]
    fn refusals_are_dead_and_gone_disables() {
        let refused = Reply::Refused { code: "HTTP 400".into(), lines: vec!["bad".into()] };
        assert_eq!(
            settle(refused, 1, &SCHEDULE, 0, 0.5),
            Settlement::Dead { status: Some("HTTP 400".into()), error: "refused (HTTP 400): bad".into() }
        );
        assert_eq!(
            settle(Reply::Gone { reason: "410".into() }, 1, &SCHEDULE, 0, 0.5),
            Settlement::Disabled { reason: "410".into() }
        );
        let accepted = Reply::Accepted { status: "HTTP 204".into() };
        assert_eq!(settle(accepted, 9, &[], 0, 0.5), Settlement::Delivered { status: "HTTP 204".into() });
    }
}
