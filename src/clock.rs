//! A process-wide monotonic clock in milliseconds, as a `u32` that wraps after 49 days: small
//! enough to keep per connection (the time its last bytes arrived) without growing idle
//! connections by an `Instant` each.
//!
//! Owns: the epoch and the conversions. Never: used for anything longer than a few weeks apart
//! (differences are taken with wrapping arithmetic).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the epoch, wrapping.
pub fn now_ms() -> u32 {
    ms_at(Instant::now())
}

/// `at` on this clock, so a caller holding an `Instant` (a timer tick, a test's fake now) uses
/// the same scale.
pub fn ms_at(at: Instant) -> u32 {
    at.saturating_duration_since(epoch()).as_millis() as u32
}

/// The `Instant` of a clock reading within ~24 days of `now`, before or after it.
pub fn instant_of(ms: u32, now: Instant) -> Instant {
    let ahead = ms.wrapping_sub(ms_at(now)) as i32;
    let d = Duration::from_millis(u64::from(ahead.unsigned_abs()));
    if ahead >= 0 {
        now + d
    } else {
        now.checked_sub(d).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_map_back_to_instants() {
        let now = Instant::now() + Duration::from_secs(5);
        let ms = ms_at(now);
        let earlier = ms.wrapping_sub(1500);
        let back = now.duration_since(instant_of(earlier, now));
        assert!(back.as_millis().abs_diff(1500) <= 1, "{back:?}");
        let later = ms.wrapping_add(700);
        let ahead = instant_of(later, now).duration_since(now);
        assert!(ahead.as_millis().abs_diff(700) <= 1, "{ahead:?}");
    }
}
