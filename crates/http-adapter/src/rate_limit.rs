//! Sliding-window rate limits for the credential endpoints: at most `limit` attempts per
//! key in any 60-second window. State is per process (each instance counts its own).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Keys tracked at most; past it, stale keys are dropped, then the least recently used
/// tenth, so memory stays bounded and a flood of new keys cannot lock everyone out.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: usize,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub(crate) fn per_minute(limit: u32) -> Self {
        Self {
            limit: limit.max(1) as usize,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Records one attempt under every key, or none when any key is over its budget;
    /// then returns how long until that key has room again.
    pub(crate) fn check(&self, keys: &[String]) -> Result<(), Duration> {
        self.check_at(keys, Instant::now())
    }

    fn check_at(&self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wait = None;
        for key in keys {
            let Some(times) = attempts.get_mut(key) else {
                continue;
            };
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            if times.len() >= self.limit
                && let Some(oldest) = times.front()
            {
                let retry = WINDOW.saturating_sub(now.duration_since(*oldest));
                wait = Some(wait.map_or(retry, |w: Duration| w.max(retry)));
            }
        }
        if let Some(wait) = wait {
            return Err(wait.max(Duration::from_secs(1)));
        }
        let new_keys = keys.iter().filter(|k| !attempts.contains_key(*k)).count();
        if attempts.len() + new_keys > MAX_KEYS {
            attempts.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
            if attempts.len() + new_keys > MAX_KEYS {
                let mut by_last_use: Vec<(Instant, String)> = attempts
                    .iter()
                    .filter_map(|(k, t)| t.back().map(|last| (*last, k.clone())))
                    .collect();
                by_last_use.sort();
                for (_, key) in by_last_use.into_iter().take(MAX_KEYS / 10 + new_keys) {
                    attempts.remove(&key);
                }
            }
        }
        for key in keys {
            attempts.entry(key.clone()).or_default().push_back(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_attempt_past_the_limit_in_a_minute_is_refused_until_the_window_moves() {
        let limiter = RateLimiter::per_minute(3);
        let start = Instant::now();
        for i in 0..3 {
            limiter
                .check_at(&keys(&["ip:1"]), start + Duration::from_secs(i))
                .unwrap();
        }
        let wait = limiter
            .check_at(&keys(&["ip:1"]), start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Another key has its own budget.
        limiter
            .check_at(&keys(&["ip:2"]), start + Duration::from_secs(10))
            .unwrap();
        // Once the first attempt leaves the window, there is room again.
        limiter
            .check_at(&keys(&["ip:1"]), start + Duration::from_secs(60))
            .unwrap();
    }

    #[test]
    fn a_refused_attempt_consumes_no_budget_of_the_other_keys() {
        let limiter = RateLimiter::per_minute(1);
        let now = Instant::now();
        limiter.check_at(&keys(&["ip:1"]), now).unwrap();
        limiter
            .check_at(&keys(&["ip:1", "account:ada"]), now)
            .unwrap_err();
        limiter.check_at(&keys(&["account:ada"]), now).unwrap();
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_used_instead_of_refusing() {
        let limiter = RateLimiter::per_minute(1);
        let start = Instant::now();
        for n in 0..MAX_KEYS {
            limiter
                .check_at(
                    &[format!("ip:{n}")],
                    start + Duration::from_millis(n as u64 / 1000),
                )
                .unwrap();
        }
        let later = start + Duration::from_secs(1);
        limiter.check_at(&keys(&["ip:newcomer"]), later).unwrap();
        // The most recent keys kept their budget (and so are still limited).
        let last = format!("ip:{}", MAX_KEYS - 1);
        assert!(limiter.check_at(&[last], later).is_err());
    }
}
