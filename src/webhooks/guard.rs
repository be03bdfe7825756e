//! Where deliveries may go. A subscription's URL is `http` or `https`, names a host and carries no
//! credentials; every address a delivery connects to is public (not loopback, private, link-local,
//! unique-local, shared, multicast or unspecified, nor such an address mapped into IPv6) unless it lies
//! in a network that `webhooks.allowed_networks` names. Addresses are checked when a subscription is
//! made and again at each delivery, after DNS resolution, by the delivery client's own resolver, so a
//! name that later resolves to a private address is refused too. The client follows no redirects.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The destinations deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    allowed: Arc<Vec<IpNet>>,
}

impl Destinations {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Destinations { allowed: Arc::new(allowed) }
    }

    /// Whether a delivery may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.iter().any(|network| network.contains(&ip))
    }

    /// Checks a subscription URL's form, and its address when it is an IP literal.
    pub fn check_url(&self, text: &str) -> Result<Url, String> {
        let url = Url::parse(text).map_err(|error| format!("invalid url {text:?}: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("invalid url {text:?}: use http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("invalid url: credentials do not belong in a webhook URL (sign with the secret instead)".into());
        }
        let Some(host) = url.host_str().filter(|host| !host.is_empty()) else {
            return Err(format!("invalid url {text:?}: no host"));
        };
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        if let Some(ip) = literal
            && !self.allows(ip)
        {
            return Err(refusal(ip));
        }
        Ok(url)
    }

    /// A client whose every connection goes to an allowed address, with no redirects.
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .user_agent(concat!("modelcat-webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .dns_resolver(Arc::new(self.clone()))
            .build()
            .expect("a webhook client builds")
    }
}

/// The reason an address is refused.
pub fn refusal(ip: IpAddr) -> String {
    format!(
        "the destination {ip} is a private, loopback or link-local address: add its network to \
         webhooks.allowed_networks to allow it"
    )
}

impl Resolve for Destinations {
    fn resolve(&self, name: Name) -> Resolving {
        let destinations = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                resolved.iter().copied().filter(|address| destinations.allows(address.ip())).collect();
            if allowed.is_empty() {
                let reason = match resolved.first() {
                    Some(address) => refusal(address.ip()),
                    None => format!("{host} resolves to no address"),
                };
                return Err(reason.into());
            }
            let addresses: Addrs = Box::new(allowed.into_iter());
            Ok(addresses)
        })
    }
}

/// Whether `ip` is a public unicast address.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [first, second, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || first == 0
                || (first == 100 && (64..128).contains(&second)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_destinations_are_refused_unless_allowed() {
        let strict = Destinations::default();
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!strict.allows(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(strict.allows(public.parse().unwrap()), "{public}");
        }
        let loopback = Destinations::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(loopback.allows("127.0.0.1".parse().unwrap()));
        assert!(!loopback.allows("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        let strict = Destinations::default();
        assert!(strict.check_url("https://hooks.example.com/modelcat").is_ok());
        assert!(strict.check_url("ftp://example.com").unwrap_err().contains("http or https"));
        assert!(strict.check_url("https://user:pw@example.com").unwrap_err().contains("credentials"));
        assert!(strict.check_url("http://169.254.169.254/latest").unwrap_err().contains("allowed_networks"));
        assert!(strict.check_url("http://[::1]:8080/").is_err());
        assert!(strict.check_url("not a url").is_err());
    }
}
