//! Which webhook URLs may be called. Private and loopback targets are refused unless
//! `[webhooks] allow_private_targets` is set: by literal address when the URL is checked, and
//! again on every DNS answer at delivery time, so a public name cannot resolve to 127.0.0.1.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("is not a valid URL")]
    Unparseable,
    #[error("must be an http:// or https:// URL")]
    Scheme,
    #[error("must not carry credentials")]
    Credentials,
    #[error("points to a private or loopback address (set [webhooks] allow_private_targets = true for development)")]
    Private,
}

pub fn parse_target(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    let parsed = Url::parse(url).map_err(|_| TargetError::Unparseable)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(TargetError::Scheme);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    if !allow_private {
        let private = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost")
            }
            None => true,
        };
        if private {
            return Err(TargetError::Private);
        }
    }
    Ok(parsed)
}

/// Addresses a webhook must not reach from a server: loopback, RFC 1918, CGNAT, link-local,
/// unique-local, unspecified, multicast and broadcast.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(mapped) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(mapped));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A DNS resolver for the webhook client that drops private answers when they are not allowed.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} resolves only to private addresses", name.as_str()),
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "http://172.16.5.4/",
            "http://169.254.169.254/latest",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://100.64.0.1/",
        ] {
            assert_eq!(parse_target(url, false), Err(TargetError::Private), "{url}");
            assert!(parse_target(url, true).is_ok(), "{url}");
        }
        assert!(parse_target("https://hooks.example.com/x", false).is_ok());
        assert!(parse_target("https://8.8.8.8/x", false).is_ok());
    }

    #[test]
    fn malformed_targets_are_refused() {
        assert_eq!(
            parse_target("not a url", true),
            Err(TargetError::Unparseable)
        );
        assert_eq!(
            parse_target("ftp://example.com/", true),
            Err(TargetError::Scheme)
        );
        assert_eq!(
            parse_target("https://u:p@example.com/", true),
            Err(TargetError::Credentials)
        );
    }
}
