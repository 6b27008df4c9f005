//! The end of tokio's clock, for tests of deadlines near it. Included with
//! `#[path = "support/clock_end.rs"] mod clock_end;`.

use std::time::Duration;

use tokio::time::Instant;

/// The longest duration that can be added to `from` without overflowing the clock.
pub fn longest_from(from: Instant) -> Duration {
    let nanos = |n: u128| Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32);
    let (mut lo, mut hi) = (0u128, Duration::MAX.as_nanos());
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if from.checked_add(nanos(mid)).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    nanos(lo)
}
