//! A published port as `docker run -p` writes it, `[ip:][hostPort:]containerPort[/proto]`,
//! read once (by the task file's parser) into a value the runner and the engine use as
//! it is, instead of each splitting the text again.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The host address it is published on (`None`: every address, unless the runner
    /// binds it to loopback).
    pub host_ip: Option<String>,
    /// The host port or range (`None` or empty: one the engine picks).
    pub host_port: Option<String>,
    /// The container's port or range.
    pub container_port: String,
    /// `tcp`, `udp` or `sctp` (`None`: tcp).
    pub protocol: Option<String>,
}

impl PortMapping {
    /// Reads a mapping; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<PortMapping, String> {
        let (spec, protocol) = match text.rsplit_once('/') {
            Some((s, p)) => (s, Some(p.to_ascii_lowercase())),
            None => (text, None),
        };
        if let Some(p) = &protocol {
            if !matches!(p.as_str(), "tcp" | "udp" | "sctp") {
                return Err(format!("port {text:?}: the protocol must be tcp, udp or sctp, not {p:?}"));
            }
        }
        let (host_ip, rest) = match spec.strip_prefix('[') {
            Some(bracketed) => {
                let (ip, rest) = bracketed
                    .split_once("]:")
                    .ok_or_else(|| format!("port {text:?}: an IPv6 address is written [address]:hostPort:containerPort"))?;
                (Some(ip.to_string()), rest)
            }
            None => {
                let parts: Vec<&str> = spec.split(':').collect();
                if parts.len() >= 3 {
                    let n = parts.len();
                    (
                        Some(parts[..n - 2].join(":")),
                        &spec[spec.len() - parts[n - 2].len() - parts[n - 1].len() - 1..],
                    )
                } else {
                    (None, spec)
                }
            }
        };
        let (host_port, container_port) = match rest.split_once(':') {
            Some((h, c)) => (Some(h.to_string()), c.to_string()),
            None => (None, rest.to_string()),
        };
        let is_port = |p: &str| {
            let mut ends = p.splitn(2, '-');
            ends.all(|e| {
                !e.is_empty() && e.len() <= 5 && e.bytes().all(|b| b.is_ascii_digit()) && e.parse::<u32>().is_ok_and(|n| n <= 65535)
            })
        };
        if !is_port(&container_port) {
            return Err(format!(
                "port {text:?}: {container_port:?} is not a container port (1-65535, or a range a-b)"
            ));
        }
        if let Some(h) = host_port.as_deref().filter(|h| !h.is_empty()) {
            if !is_port(h) {
                return Err(format!("port {text:?}: {h:?} is not a host port (1-65535, or a range a-b)"));
            }
        }
        if host_ip.as_deref().is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_err()) {
            return Err(format!("port {text:?}: {:?} is not an IP address", host_ip.unwrap_or_default()));
        }
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }

    /// The engine's key of the container's side: `80/tcp`.
    pub fn container_key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol.as_deref().unwrap_or("tcp"))
    }

    /// Published on an address other than loopback, or on every address when `None`.
    pub fn is_public(&self) -> bool {
        self.host_ip.as_deref().is_some_and(|ip| !slipway_reference::host::is_loopback(ip))
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host_ip {
            Some(ip) if ip.contains(':') => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        match &self.host_port {
            Some(h) => write!(f, "{h}:{}", self.container_port)?,
            None if self.host_ip.is_some() => write!(f, ":{}", self.container_port)?,
            None => write!(f, "{}", self.container_port)?,
        }
        if let Some(p) = &self.protocol {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for PortMapping {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::PortMapping;

    #[test]
    fn mappings_as_docker_writes_them() {
        for (text, ip, host, container, proto) in [
            ("80", None, None, "80", None),
            ("8080:80", None, Some("8080"), "80", None),
            ("127.0.0.1:8080:80", Some("127.0.0.1"), Some("8080"), "80", None),
            ("127.0.0.1::80", Some("127.0.0.1"), Some(""), "80", None),
            ("[::1]:8080:80/udp", Some("::1"), Some("8080"), "80", Some("udp")),
            (
                "0.0.0.0:8000-8010:8000-8010/tcp",
                Some("0.0.0.0"),
                Some("8000-8010"),
                "8000-8010",
                Some("tcp"),
            ),
        ] {
            let m = PortMapping::parse(text).unwrap();
            assert_eq!(
                (
                    m.host_ip.as_deref(),
                    m.host_port.as_deref(),
                    m.container_port.as_str(),
                    m.protocol.as_deref()
                ),
                (ip, host, container, proto),
                "{text}"
            );
            assert_eq!(m.to_string(), text, "written back as given");
        }
    }

    #[test]
    fn public_and_bad_mappings() {
        for (text, public) in [
            ("8080:80", false),
            ("127.0.0.1:8080:80", false),
            ("[::1]:8080:80", false),
            ("[::ffff:127.0.0.1]:1:2", false),
            ("0.0.0.0:8080:80", true),
            ("[::]:8080:80", true),
            ("10.1.2.3:8080:80/tcp", true),
        ] {
            assert_eq!(PortMapping::parse(text).unwrap().is_public(), public, "{text}");
        }
        for bad in ["", "x", "80/icmp", "99999", "a:80", "1.2.3:80:80", "[::1:80", "8080:"] {
            assert!(PortMapping::parse(bad).is_err(), "{bad}");
        }
    }
}
