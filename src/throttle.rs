//! A token bucket: bytes per second with a second's burst. Sync paces
//! capture uploads with one (the venue's thin uplink keeps room for
//! check-in traffic; event segments are not paced), and the upload
//! handler paces tus bodies while the door is busy.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone)]
pub struct Throttle {
    rate: u64,
    state: Arc<Mutex<(Instant, f64)>>,
}

impl Throttle {
    /// `rate` bytes per second, with up to a second's worth of burst.
    pub fn new(rate: u64) -> Throttle {
        Throttle { rate: rate.max(1), state: Arc::new(Mutex::new((Instant::now(), 0.0))) }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Waits until `n` bytes may go.
    pub async fn take(&self, n: u64) {
        let wait = {
            let mut s = self.state.lock().expect("throttle lock");
            let now = Instant::now();
            let refill = now.duration_since(s.0).as_secs_f64() * self.rate as f64;
            s.1 = (s.1 + refill).min(self.rate as f64);
            s.0 = now;
            s.1 -= n as f64;
            if s.1 >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.1 / self.rate as f64)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_megabyte_at_256_kib_per_second_takes_about_four_seconds() {
        let t = Throttle::new(256 << 10);
        let start = tokio::time::Instant::now();
        for _ in 0..16 {
            t.take(64 << 10).await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(3_900) && took <= Duration::from_millis(4_100),
            "{took:?}"
        );
    }
}
