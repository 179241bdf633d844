//! Which hosts and directories an API client's sources may make the daemon reach.
//!
//! A source URL is fetched by the daemon, from the daemon's network: without a check,
//! `http://127.0.0.1:5432/`, a private address, `http://2130706433/` or a redirect to
//! any of them is a way into the daemon's own host and its network (and the error text
//! a port-scan oracle). Loopback, private, link-local, shared and unspecified addresses
//! are refused unless the operator lists them (`allowed_source_hosts`), for every
//! address a name resolves to and for every redirect hop. `file://` sources read the
//! daemon's disk, so they come only from directories the operator lists
//! (`file_source_dirs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What sources may reach, from the daemon's settings.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub file_dirs: Vec<PathBuf>,
    /// Host names, addresses and networks (`10.0.0.0/8`) the operator allows.
    pub allowed: Vec<String>,
    /// The setting `allowed` comes from, named in refusals (`allowed_source_hosts`
    /// when empty).
    pub setting: &'static str,
    /// The machine's own addresses (every interface's), read again now and then.
    pub own: Arc<OwnAddresses>,
}

/// The addresses of this machine's interfaces. An address of the machine reaches the
/// daemon and every service listening on all interfaces, whatever range it is in, so
/// it is refused unless the operator lists that very address (or the host name): a
/// network listed for other machines does not let it through.
#[derive(Debug)]
pub struct OwnAddresses {
    read: std::sync::Mutex<(std::time::Instant, Vec<IpAddr>)>,
}

/// How long a reading of the interfaces' addresses is used.
const OWN_ADDRESSES_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for OwnAddresses {
    fn default() -> Self {
        OwnAddresses {
            read: std::sync::Mutex::new((std::time::Instant::now(), interface_addresses())),
        }
    }
}

impl OwnAddresses {
    /// Fixed addresses (for tests).
    pub fn fixed(addresses: Vec<IpAddr>) -> OwnAddresses {
        OwnAddresses {
            read: std::sync::Mutex::new((std::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365), addresses)),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        if read.0.elapsed() > OWN_ADDRESSES_FOR {
            *read = (std::time::Instant::now(), interface_addresses());
        }
        let ip = match ip {
            IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        read.1.contains(&ip)
    }
}

fn interface_addresses() -> Vec<IpAddr> {
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    list.filter_map(|i| {
        let a = i.address?;
        a.as_sockaddr_in()
            .map(|s| IpAddr::V4(s.ip()))
            .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
    })
    .collect()
}

/// An address inside the machine or its private network.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => internal_v4(a),
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let seg = a.segments();
            let first = seg[0];
            // An IPv4 address carried inside (IPv4-compatible ::a.b.c.d, 6to4 2002:AABB:CCDD::).
            let compatible = seg[..6].iter().all(|s| *s == 0) && !a.is_loopback() && !a.is_unspecified();
            let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated, still routed by some)
                || (first == 0x64 && seg[1] == 0xff9b) // NAT64 of anything
                || (first == 0x2001 && seg[1] == 0) // Teredo: tunnels to any IPv4 address
                || (first == 0x2001 && seg[1] == 0x0db8) // documentation
                || (compatible && internal_v4(embedded(seg[6], seg[7])))
                || (first == 0x2002 && internal_v4(embedded(seg[1], seg[2])))
        }
    }
}

fn internal_v4(a: Ipv4Addr) -> bool {
    let [b0, b1, ..] = a.octets();
    a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || b0 == 0
        || (b0 == 100 && (64..128).contains(&b1)) // shared address space
        || (b0 == 198 && (b1 == 18 || b1 == 19)) // benchmarking
        || (b0 == 192 && b1 == 0 && a.octets()[2] == 0) // IETF protocol assignments
        || (b0 == 192 && b1 == 0 && a.octets()[2] == 2) // documentation (TEST-NET-1)
        || (b0 == 198 && b1 == 51 && a.octets()[2] == 100) // documentation (TEST-NET-2)
        || (b0 == 203 && b1 == 0 && a.octets()[2] == 113) // documentation (TEST-NET-3)
        || b0 >= 240 // reserved
}

fn in_network(ip: IpAddr, net: &str) -> bool {
    let Some((base, bits)) = net.split_once('/') else {
        return base_ip(net) == Some(ip);
    };
    let (Some(base), Ok(bits)) = (base_ip(base), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn base_ip(s: &str) -> Option<IpAddr> {
    s.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

impl Reach {
    fn host_listed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
    }

    /// Whether a source may connect to `ip` (reached through `host`).
    pub fn address_allowed(&self, host: &str, ip: IpAddr) -> bool {
        if self.own.contains(ip) {
            // Only that very address, or the host by name: never a network listed.
            return self.host_listed(host) || self.allowed.iter().any(|a| !a.contains('/') && base_ip(a) == Some(ip));
        }
        !is_internal(ip) || self.host_listed(host) || self.allowed.iter().any(|n| in_network(ip, n))
    }

    /// Checks a URL's host before anything is sent: an address is checked as it is, a
    /// name by every address it resolves to now. (A name is resolved again when
    /// connecting; HTTP downloads check again there, see [`Reach::resolver`].)
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        self.check_url_with(url, true)
    }

    /// As [`Reach::check_url`], but names are not resolved (for a quick check when a
    /// run is requested; the fetch checks them).
    pub fn check_url_literal(&self, url: &str) -> Result<(), String> {
        self.check_url_with(url, false)
    }

    fn check_url_with(&self, url: &str, resolve: bool) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let Some(host) = parsed.host() else {
            return Err(format!("{url:?} names no host"));
        };
        let port = parsed.port_or_known_default().unwrap_or(9418);
        let (name, addrs): (String, Vec<IpAddr>) = match host {
            url::Host::Ipv4(a) => (a.to_string(), vec![IpAddr::V4(a)]),
            url::Host::Ipv6(a) => (a.to_string(), vec![IpAddr::V6(a)]),
            // Outside http(s) the URL crate leaves an address as a name: read it as one.
            url::Host::Domain(d) if d.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() => {
                let ip: IpAddr = d.trim_start_matches('[').trim_end_matches(']').parse().expect("checked above");
                (d.to_string(), vec![ip])
            }
            url::Host::Domain(d) => {
                if self.host_listed(d) || !resolve {
                    return Ok(());
                }
                let found: Vec<IpAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(d, port))
                    .map_err(|e| format!("cannot resolve {d}: {e}"))?
                    .map(|s| s.ip())
                    .collect();
                (d.to_string(), found)
            }
        };
        match addrs.iter().find(|a| !self.address_allowed(&name, **a)) {
            Some(a) => Err(internal_refusal(&name, *a, self.setting)),
            None => Ok(()),
        }
    }

    /// Checks a `file://` URL's path against the listed directories.
    pub fn check_file(&self, url: &str) -> Result<PathBuf, String> {
        let path = url
            .strip_prefix("file://")
            .map(|p| p.split('#').next().unwrap_or(p))
            .ok_or_else(|| format!("{url:?} is not a file:// URL"))?;
        let refused = || {
            format!(
                "file:// sources are read from the daemon's own disk and are allowed only beneath the directories the operator lists in file_source_dirs; {path:?} is not"
            )
        };
        let real = Path::new(path).canonicalize().map_err(|_| refused())?;
        let inside = self
            .file_dirs
            .iter()
            .filter_map(|d| d.canonicalize().ok())
            .any(|d| real.starts_with(d));
        if inside {
            Ok(real)
        } else {
            Err(refused())
        }
    }

    /// A resolver for HTTP clients that refuses names resolving to refused addresses,
    /// so redirects and re-resolution are checked at connect time too.
    pub fn resolver(self: &Arc<Self>) -> Arc<CheckedResolver> {
        Arc::new(CheckedResolver { reach: self.clone() })
    }
}

fn internal_refusal(host: &str, ip: IpAddr, setting: &str) -> String {
    let (who, setting) = match setting {
        "" | "allowed_source_hosts" => ("sources", "allowed_source_hosts"),
        other => ("webhooks", other),
    };
    format!(
        "{host} is {ip}, an address of the daemon's own machine or private network; {who} may reach it only if the operator lists it in {setting}"
    )
}

/// Resolves names for reqwest and keeps only what [`Reach`] allows.
pub struct CheckedResolver {
    reach: Arc<Reach>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let reach = self.reach.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = found.iter().find(|a| !reach.address_allowed(&host, a.ip())) {
                return Err(internal_refusal(&host, bad.ip(), reach.setting).into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_listed() {
        let r = Reach::default();
        for url in [
            "http://127.0.0.1:5432/x.tar.gz",
            "http://2130706433/x.tar.gz",
            "http://0x7f.1/x.tar.gz",
            "http://[::1]/x",
            "http://[::ffff:10.0.0.1]/x",
            "http://10.1.2.3/x",
            "http://172.20.0.1/x",
            "http://192.168.1.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/x",
            "http://100.64.0.1/x",
            "https://localhost/r.git",
            "git://127.0.0.1/r.git",
            "git://[::1]/r.git",
        ] {
            let e = r.check_url(url).unwrap_err();
            assert!(
                r.check_url_literal(url).is_err() || url.contains("localhost"),
                "{url} passes the quick check"
            );
            assert!(e.contains("allowed_source_hosts"), "{url}: {e}");
        }
        let listed = Reach {
            allowed: vec!["127.0.0.1".into(), "10.0.0.0/8".into()],
            own: Arc::new(OwnAddresses::fixed(vec![
                "127.0.0.1".parse().unwrap(),
                "10.1.1.1".parse().unwrap(),
                "203.0.114.7".parse().unwrap(),
            ])),
            ..Default::default()
        };
        // The machine's own addresses pass only when listed themselves, whatever their range.
        assert!(
            listed.check_url("http://10.1.1.1/x").unwrap_err().contains("allowed_source_hosts"),
            "an own address in a listed network"
        );
        assert!(listed.check_url("http://203.0.114.7/x").is_err(), "an own public address");
        assert!(listed.check_url("http://[::ffff:203.0.114.7]/x").is_err());
        for documentation in [
            "http://192.0.2.10/x",
            "http://198.51.100.1/x",
            "http://203.0.113.9/x",
            "http://[2001:db8::1]/x",
        ] {
            assert!(Reach::default().check_url(documentation).is_err(), "{documentation}");
        }
        assert!(listed.check_url("http://127.0.0.1:9/x.tar.gz").is_ok());
        assert!(listed.check_url("http://10.9.9.9/x").is_ok());
        assert!(listed.check_url("http://192.168.0.1/x").is_err());
        assert!(in_network("fd00::1".parse().unwrap(), "fc00::/7"));
        for hidden in [
            "::7f00:1",
            "2002:7f00:1::",
            "2002:a00:1::",
            "fec0::1",
            "2001:0:1::1",
            "192.0.0.8",
            "240.0.0.1",
        ] {
            assert!(is_internal(hidden.parse().unwrap()), "{hidden}");
        }
        assert!(!is_internal("2002:5db8:d822::1".parse().unwrap()), "6to4 of a public address");
        assert!(!is_internal("93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn file_sources_only_from_listed_directories() {
        let allowed = tempfile::tempdir().unwrap();
        std::fs::create_dir(allowed.path().join("r.git")).unwrap();
        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(other.path(), allowed.path().join("link")).unwrap();
        let r = Reach {
            file_dirs: vec![allowed.path().to_path_buf()],
            ..Default::default()
        };
        assert!(r.check_file(&format!("file://{}/r.git#main", allowed.path().display())).is_ok());
        for bad in [
            format!("file://{}", other.path().display()),
            format!("file://{}/link", allowed.path().display()),
            format!("file://{}/../", allowed.path().display()),
            "file:///etc".to_string(),
        ] {
            assert!(r.check_file(&bad).unwrap_err().contains("file_source_dirs"), "{bad}");
        }
        assert!(Reach::default()
            .check_file(&format!("file://{}/r.git", allowed.path().display()))
            .is_err());
    }
}
