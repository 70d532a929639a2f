//! Abuse protection ahead of any transaction state: per-source token buckets with a ban
//! window, and silent drops for known scanners' User-Agents. Sans-IO (time passed in) and
//! bounded (idle sources are swept; the table has a hard cap).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second allowed from one source address.
    pub per_second: f64,
    /// Burst size (bucket capacity).
    pub burst: f64,
    /// How long a source that exceeded the limit stays dropped.
    pub ban: Duration,
    /// Networks never limited, as (address, prefix length): trunks, a proxy in front.
    pub exempt: Vec<(IpAddr, u8)>,
}

impl Default for RateLimit {
    /// 50 req/s sustained, bursts of 100, one-minute ban. A call costs 3 requests (INVITE, ACK,
    /// BYE), so one source gets ~16 calls/s before it must be exempted (trunks: add their
    /// networks to `exempt`); scanners send hundreds per second and are banned within a second.
    fn default() -> Self {
        RateLimit {
            per_second: 50.0,
            burst: 100.0,
            ban: Duration::from_secs(60),
            exempt: Vec::new(),
        }
    }
}

const SCANNERS: [&str; 3] = ["friendly-scanner", "sipvicious", "sipcli"];
const MAX_SOURCES: usize = 100_000;

/// Whether a User-Agent belongs to a known SIP scanner (case-insensitive substring).
pub fn is_scanner(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    SCANNERS.iter().any(|s| ua.contains(s))
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    banned_until: Option<Instant>,
}

#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimit,
    sources: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    pub fn new(config: RateLimit) -> RateLimiter {
        RateLimiter {
            config,
            sources: HashMap::new(),
        }
    }

    /// Takes one token for `ip`; false means drop (over the limit or banned).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self
            .config
            .exempt
            .iter()
            .any(|&(net, len)| in_prefix(ip, net, len))
        {
            return true;
        }
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&ip) {
            self.sweep(now);
            if self.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let c = &self.config;
        let b = self.sources.entry(ip).or_insert(Bucket {
            tokens: c.burst,
            last: now,
            banned_until: None,
        });
        if let Some(until) = b.banned_until {
            if now < until {
                return false;
            }
            b.banned_until = None;
            b.tokens = c.burst;
        }
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * c.per_second).min(c.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            b.banned_until = Some(now + c.ban);
            false
        }
    }

    /// Forgets sources that are neither banned nor recently active.
    pub fn sweep(&mut self, now: Instant) {
        let refill = Duration::from_secs_f64(
            self.config.burst / self.config.per_second.max(f64::MIN_POSITIVE),
        );
        self.sources.retain(|_, b| {
            b.banned_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(b.last) < refill
        });
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

/// Whether `ip` lies in `net/len` (same address family only).
pub fn in_prefix(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    fn masked(bits: u128, width: u32, len: u8) -> u128 {
        let len = u32::from(len).min(width);
        if len == 0 {
            0
        } else {
            bits >> (width - len)
        }
    }
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            masked(u32::from(a).into(), 32, len) == masked(u32::from(b).into(), 32, len)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            masked(u128::from(a), 128, len) == masked(u128::from(b), 128, len)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> RateLimiter {
        RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 5.0,
            ban: Duration::from_secs(30),
            exempt: vec![("10.0.0.0".parse().unwrap(), 24)],
        })
    }

    #[test]
    fn burst_then_ban_then_recovery() {
        let t0 = Instant::now();
        let mut l = limiter();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..5).all(|_| l.allow(ip, t0)));
        assert!(
            !l.allow(ip, t0),
            "sixth in the same instant exceeds the burst"
        );
        assert!(!l.allow(ip, t0 + Duration::from_secs(10)), "still banned");
        assert!(l.allow(ip, t0 + Duration::from_secs(31)));
        assert!(
            l.allow("192.0.2.2".parse().unwrap(), t0),
            "other sources unaffected"
        );
    }

    #[test]
    fn sustained_rate_within_limit_passes_and_exempt_never_limited() {
        let t0 = Instant::now();
        let mut l = limiter();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..100).all(|i| l.allow(ip, t0 + Duration::from_millis(100 * i))));
        let trunk: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(!in_prefix(
            "10.0.1.9".parse().unwrap(),
            "10.0.0.0".parse().unwrap(),
            24
        ));
        assert!(in_prefix(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::".parse().unwrap(),
            32
        ));
        assert!(in_prefix(
            "192.0.2.1".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
            0
        ));
        assert!((0..1000).all(|_| l.allow(trunk, t0)));
    }

    #[test]
    fn sweep_forgets_idle_sources() {
        let t0 = Instant::now();
        let mut l = limiter();
        l.allow("192.0.2.1".parse().unwrap(), t0);
        l.sweep(t0 + Duration::from_secs(5));
        assert_eq!(l.tracked_sources(), 0);
    }

    #[test]
    fn scanner_user_agents() {
        assert!(is_scanner("friendly-scanner"));
        assert!(is_scanner("SIPVicious 0.3"));
        assert!(is_scanner("sipcli/v1.8"));
        assert!(!is_scanner("SIPp/3.6.1"));
    }
}
