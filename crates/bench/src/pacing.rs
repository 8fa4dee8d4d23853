//! Open-loop pacing shared by the drivers: how a total is split among workers, when each message
//! of a fixed-rate schedule is due, and the slot of a rate-capped consumer. Pure functions, so the
//! schedules are tested without a clock.

use std::time::{Duration, Instant};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Messages (or msgs/s) worker `index` of `of` takes: the total split as evenly as possible.
pub fn share(total: u64, index: usize, of: usize) -> u64 {
    let of = of.max(1) as u64;
    total / of + u64::from((index as u64) < total % of)
}

/// When message `n` of a sender sending `rate` per second is due, from the start. Computed from
/// `n`, not by adding intervals, so rounding never accumulates into a slower rate.
pub fn due(n: u64, rate: u64) -> Duration {
    let nanos = u128::from(n) * u128::from(NANOS_PER_SECOND) / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The time between two messages at `rate` per second.
pub fn interval(rate: u64) -> Duration {
    Duration::from_nanos(NANOS_PER_SECOND / rate.max(1))
}

/// When a consumer capped at one message per `interval` may process its next message.
///
/// One `interval` after the previous slot, so a timer waking late does not cost a slot; but never
/// earlier than `now - slack`: an idle consumer earns at most `slack` worth of credit, so after a
/// quiet spell it does not race through a backlog above its cap.
pub fn next_slot(
    previous: Option<Instant>,
    now: Instant,
    interval: Duration,
    slack: Duration,
) -> Instant {
    let floor = now.checked_sub(slack).unwrap_or(now);
    match previous {
        Some(previous) => (previous + interval).max(floor),
        None => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for (total, of) in [(10, 3), (7, 7), (5, 8), (1_000_000, 4), (0, 3)] {
            let shares: Vec<u64> = (0..of).map(|i| share(total, i, of)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total);
            let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(max - min <= 1, "{shares:?}");
        }
        assert_eq!(share(10, 0, 0), 10, "zero workers is treated as one");
    }

    #[test]
    fn sends_are_spread_evenly() {
        assert_eq!(due(0, 1000), Duration::ZERO);
        assert_eq!(due(1, 1000), Duration::from_millis(1));
        assert_eq!(due(500, 1000), Duration::from_millis(500));
        assert_eq!(due(3, 4), Duration::from_millis(750));
        assert_eq!(
            due(5, 0),
            Duration::from_secs(5),
            "rate 0 is treated as 1/s"
        );
    }

    #[test]
    fn schedule_does_not_drift() {
        // 1/3000 s is not a whole number of nanoseconds: summed intervals would run ahead.
        assert_eq!(due(3_000, 3_000), Duration::from_secs(1));
        assert_eq!(due(9_000_000, 3_000), Duration::from_secs(3_000));
        assert_eq!(
            due(u64::MAX, 1),
            Duration::from_nanos(u64::MAX),
            "saturates"
        );
    }

    #[test]
    fn interval_is_the_reciprocal_rate() {
        assert_eq!(interval(1000), Duration::from_millis(1));
        assert_eq!(interval(0), Duration::from_secs(1));
    }

    #[test]
    fn capped_consumer_slots() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let ms = Duration::from_millis;
        let (every, slack) = (ms(10), ms(20));
        assert_eq!(
            next_slot(None, t0, every, slack),
            t0,
            "first message at once"
        );
        // Busy: slots one interval apart, even if the consumer woke a little late.
        assert_eq!(next_slot(Some(t0), t0 + ms(3), every, slack), t0 + ms(10));
        // Idle for a second: at most `slack` of credit, not a hundred slots.
        assert_eq!(
            next_slot(Some(t0), t0 + ms(1000), every, slack),
            t0 + ms(980)
        );
    }
}
