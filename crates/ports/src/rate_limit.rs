//! Rate limits, per process:
//! - [`TokenBuckets`]: what anonymous or unproven callers may try (registration, login,
//!   refresh). Each key (a client address, an account) has a bucket of `limit` attempts
//!   that refills evenly over `window`.
//! - [`TokenBucket`]: one bucket, over everything one live session sends.
//! - [`RecentKeys`]: keys seen lately (the addresses an account signed in from).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::rate_limit::{Budget, RateLimitStore, Taken};

/// Who an anonymous request comes from, as the limits count it: an IPv4 address, or
/// the /64 of an IPv6 one, which is what one subscriber usually gets (per-address keys
/// would give them 2^64 budgets). IPv4-mapped IPv6 addresses count as IPv4.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(String);

/// A short, fixed-size stand-in for a secret or an unbounded input (an address, a
/// token) in a limiter key: 96 bits of its SHA-256, in hex.
pub fn fingerprint(value: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(value.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ClientKey {
    pub fn of(ip: Option<IpAddr>) -> Self {
        Self(match ip {
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
            Some(IpAddr::V4(v4)) => v4.to_string(),
            None => "unknown".to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keys tracked at most. Past it, keys with a full bucket go first (forgetting them
/// loses nothing), then the tenth that owes the least: a flood of fresh keys, each one
/// attempt deep, cannot push out a key that many attempts have drained.
const MAX_KEYS: usize = 100_000;

/// A token bucket per key (GCRA: one instant per key, the time its bucket is full
/// again), so memory is constant per key whatever the limit.
#[derive(Debug)]
pub struct TokenBuckets {
    limit: u32,
    /// Time for one attempt to be given back.
    interval: Duration,
    /// How far ahead of now a key's full-again time may be: `window - interval`.
    burst: Duration,
    max_keys: usize,
    full_at: Mutex<HashMap<String, Instant>>,
}

impl TokenBuckets {
    /// `limit` attempts per minute and key (at least one).
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` attempts per `window` and key (at least one).
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::with_capacity(limit, window, MAX_KEYS)
    }

    fn with_capacity(limit: u32, window: Duration, max_keys: usize) -> Self {
        let limit = limit.max(1);
        let interval = window / limit;
        Self {
            limit,
            interval,
            burst: window.saturating_sub(interval),
            max_keys: max_keys.max(1),
            full_at: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Spends one attempt under every key, or none when any key has none left; then
    /// says how long until that key has one again.
    pub fn check(&self, keys: &[&str]) -> Result<(), Duration> {
        self.check_at(keys, Instant::now(), true)
    }

    /// Whether every key has an attempt left, spending nothing: for limits that count
    /// only some outcomes (failed logins), checked before and recorded after.
    pub fn peek(&self, keys: &[&str]) -> Result<(), Duration> {
        self.check_at(keys, Instant::now(), false)
    }

    /// Spends one attempt under every key, even past the limit (the attempt happened).
    pub fn record(&self, keys: &[&str]) {
        let now = Instant::now();
        let mut table = self.table();
        self.make_room(&mut table, keys, now);
        for key in keys {
            let next = self.spent(table.get(*key).copied(), now);
            table.insert((*key).to_owned(), next);
        }
    }

    /// How far ahead of now the key's bucket is full again (zero: full).
    pub fn ahead(&self, key: &str) -> Duration {
        self.table().get(key).map_or(Duration::ZERO, |full_at| {
            full_at.saturating_duration_since(Instant::now())
        })
    }

    /// Gives a key its whole budget back.
    pub fn reset(&self, key: &str) {
        self.table().remove(key);
    }

    /// Gives back one attempt spent under `key`: for a limit spent before an outcome it
    /// only counts one way (a login that turned out to succeed).
    pub fn refund(&self, key: &str) {
        let now = Instant::now();
        let mut table = self.table();
        if let Some(full_at) = table.get_mut(key) {
            match full_at.checked_sub(self.interval) {
                Some(earlier) if earlier > now => *full_at = earlier,
                _ => {
                    table.remove(key);
                }
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.full_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key's full-again time after one more attempt.
    fn spent(&self, full_at: Option<Instant>, now: Instant) -> Instant {
        full_at.map_or(now, |at| at.max(now)) + self.interval
    }

    fn check_at(&self, keys: &[&str], now: Instant, spend: bool) -> Result<(), Duration> {
        let mut table = self.table();
        let mut wait: Option<Duration> = None;
        for key in keys {
            if let Some(full_at) = table.get(*key) {
                let ahead = full_at.saturating_duration_since(now);
                if ahead > self.burst {
                    let retry = ahead - self.burst;
                    wait = Some(wait.map_or(retry, |w| w.max(retry)));
                }
            }
        }
        if let Some(wait) = wait {
            return Err(wait.max(Duration::from_secs(1)));
        }
        if spend {
            self.make_room(&mut table, keys, now);
            for key in keys {
                let next = self.spent(table.get(*key).copied(), now);
                table.insert((*key).to_owned(), next);
            }
        }
        Ok(())
    }

    fn make_room(&self, table: &mut HashMap<String, Instant>, keys: &[&str], now: Instant) {
        let new_keys = keys.iter().filter(|k| !table.contains_key(**k)).count();
        if table.len() + new_keys <= self.max_keys {
            return;
        }
        table.retain(|_, full_at| *full_at > now);
        if table.len() + new_keys <= self.max_keys {
            return;
        }
        // Evict the tenth that owes the least (ties: any of them).
        let evict = (self.max_keys / 10).max(1) + new_keys;
        let mut owed: Vec<Duration> = table
            .values()
            .map(|at| at.saturating_duration_since(now))
            .collect();
        let nth = evict.min(owed.len()) - 1;
        let (_, threshold, _) = owed.select_nth_unstable(nth);
        let threshold = *threshold;
        let mut removed = 0;
        table.retain(|_, at| {
            if removed < evict && at.saturating_duration_since(now) <= threshold {
                removed += 1;
                false
            } else {
                true
            }
        });
    }
}

/// Keys seen lately (within `ttl`), at most `max` of them: past it the oldest tenth is
/// forgotten. Only what succeeded is inserted (a login), so nobody can fill it without
/// succeeding many times.
#[derive(Debug)]
pub struct RecentKeys {
    ttl: Duration,
    max: usize,
    seen: Mutex<HashMap<String, Instant>>,
}

impl RecentKeys {
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, MAX_KEYS)
    }

    fn with_capacity(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max: max.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|at| at.elapsed() < self.ttl)
    }

    pub fn insert(&self, key: &str) {
        let now = Instant::now();
        let mut seen = self.lock();
        if !seen.contains_key(key) && seen.len() >= self.max {
            seen.retain(|_, at| now.duration_since(*at) < self.ttl);
            if seen.len() >= self.max {
                let mut ages: Vec<Instant> = seen.values().copied().collect();
                let nth = (self.max / 10).max(1).min(ages.len()) - 1;
                let (_, oldest, _) = ages.select_nth_unstable(nth);
                let oldest = *oldest;
                seen.retain(|_, at| *at > oldest);
            }
        }
        seen.insert(key.to_owned(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_gives_back_one_attempt() {
        let limiter = TokenBuckets::per_minute(2);
        limiter.check(&["account:ada"]).unwrap();
        limiter.check(&["account:ada"]).unwrap();
        assert!(limiter.peek(&["account:ada"]).is_err());
        limiter.refund("account:ada");
        limiter.check(&["account:ada"]).unwrap();
        assert!(limiter.peek(&["account:ada"]).is_err());
    }

    #[test]
    fn recent_keys_are_remembered_for_their_time_and_bounded() {
        let recent = RecentKeys::with_capacity(Duration::from_secs(3600), 100);
        recent.insert("ada|ip:1");
        assert!(recent.contains("ada|ip:1"));
        assert!(!recent.contains("ada|ip:2"));
        for n in 0..1000 {
            recent.insert(&format!("k{n}"));
        }
        assert!(recent.lock().len() <= 100);
        let gone = RecentKeys::with_capacity(Duration::ZERO, 10);
        gone.insert("x");
        assert!(!gone.contains("x"));
    }

    #[test]
    fn a_burst_of_the_limit_then_one_attempt_per_interval() {
        let limiter = TokenBuckets::per_minute(3);
        let start = Instant::now();
        for i in 0..3 {
            limiter
                .check_at(&["ip:1"], start + Duration::from_secs(i), true)
                .unwrap();
        }
        let wait = limiter
            .check_at(&["ip:1"], start + Duration::from_secs(10), true)
            .unwrap_err();
        // One attempt comes back every 20 s: the first at 20 s.
        assert_eq!(wait, Duration::from_secs(10));
        // Another key has its own budget.
        limiter
            .check_at(&["ip:2"], start + Duration::from_secs(10), true)
            .unwrap();
        limiter
            .check_at(&["ip:1"], start + Duration::from_secs(20), true)
            .unwrap();
        assert!(
            limiter
                .check_at(&["ip:1"], start + Duration::from_secs(21), true)
                .is_err()
        );
    }

    #[test]
    fn a_refused_attempt_consumes_no_budget_of_the_other_keys() {
        let limiter = TokenBuckets::per_minute(1);
        let now = Instant::now();
        limiter.check_at(&["ip:1"], now, true).unwrap();
        limiter
            .check_at(&["ip:1", "account:ada"], now, true)
            .unwrap_err();
        limiter.check_at(&["account:ada"], now, true).unwrap();
    }

    #[test]
    fn peek_spends_nothing_record_spends_and_reset_restores() {
        let limiter = TokenBuckets::per_minute(2);
        for _ in 0..5 {
            limiter.peek(&["account:ada"]).unwrap();
        }
        limiter.record(&["account:ada"]);
        limiter.record(&["account:ada"]);
        assert!(limiter.peek(&["account:ada"]).is_err());
        limiter.reset("account:ada");
        limiter.peek(&["account:ada"]).unwrap();
    }

    #[test]
    fn a_flood_of_fresh_keys_cannot_evict_a_drained_key() {
        let limiter = TokenBuckets::with_capacity(5, Duration::from_secs(3600), 1000);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.check_at(&["account:victim"], start, true).unwrap();
        }
        for n in 0..10_000 {
            let key = format!("account:fresh-{n}");
            limiter.check_at(&[&key], start, true).unwrap();
        }
        assert!(limiter.table().len() <= 1000);
        assert!(
            limiter.check_at(&["account:victim"], start, true).is_err(),
            "the drained key kept its count"
        );
    }

    #[test]
    fn client_keys_group_ipv6_by_64_and_unmap_ipv4() {
        let key = |s: &str| ClientKey::of(Some(s.parse().unwrap())).to_string();
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(ClientKey::of(None).as_str(), "unknown");
    }
}

/// A token bucket over everything one client sends: `per_sec` sustained, and as a
/// burst. Every transport applies the same budget.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    last: Instant,
    refused: u32,
}

impl TokenBucket {
    pub fn new(per_sec: u32) -> Self {
        let capacity = f64::from(per_sec.max(1));
        Self {
            capacity,
            tokens: capacity,
            last: Instant::now(),
            refused: 0,
        }
    }

    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.capacity)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// Frames refused in a row; past the per-second budget the client is cut off.
    pub fn refused(&self) -> u32 {
        self.refused
    }
}

/// [`RateLimitStore`] in this process: each budget's keys in a [`TokenBuckets`] table.
/// For the embedded default, where there is one instance; with a database, the store
/// is Postgres' and every instance shares the count.
#[derive(Debug, Default)]
pub struct LocalRateLimits {
    budgets: Mutex<HashMap<Budget, std::sync::Arc<TokenBuckets>>>,
}

impl LocalRateLimits {
    fn buckets(&self, budget: &Budget) -> std::sync::Arc<TokenBuckets> {
        // As many entries as budgets the code names: a handful.
        self.budgets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(*budget)
            .or_insert_with(|| {
                std::sync::Arc::new(TokenBuckets::new(budget.limit(), budget.window()))
            })
            .clone()
    }
}

#[async_trait::async_trait]
impl RateLimitStore for LocalRateLimits {
    async fn take(&self, budget: &Budget, key: &str) -> Result<Taken, domain::Error> {
        let buckets = self.buckets(budget);
        Ok(match buckets.check(&[key]) {
            Ok(()) => Taken::Allowed(budget.remaining(buckets.ahead(key))),
            Err(retry_after) => Taken::Refused { retry_after },
        })
    }

    async fn peek(&self, budget: &Budget, key: &str) -> Result<Taken, domain::Error> {
        let buckets = self.buckets(budget);
        Ok(match buckets.peek(&[key]) {
            Ok(()) => Taken::Allowed(budget.remaining(buckets.ahead(key))),
            Err(retry_after) => Taken::Refused { retry_after },
        })
    }

    async fn record(&self, budget: &Budget, key: &str) -> Result<(), domain::Error> {
        self.buckets(budget).record(&[key]);
        Ok(())
    }

    async fn refund(&self, budget: &Budget, key: &str) -> Result<(), domain::Error> {
        self.buckets(budget).refund(key);
        Ok(())
    }
}

#[cfg(test)]
mod local_store_contract {
    async fn store() -> (super::LocalRateLimits, ()) {
        (super::LocalRateLimits::default(), ())
    }

    contract_tests::rate_limit_store_contract!(store);
}
