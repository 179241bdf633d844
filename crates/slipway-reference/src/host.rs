//! Whether a host name or address is this machine's loopback: the one reading every
//! crate uses (the daemon's listen address, a request's `Host`, a published port's
//! address, a registry spoken to in plain HTTP), so none of them disagrees about
//! `[::ffff:127.0.0.1]` or `LOCALHOST`.

use std::net::IpAddr;

/// An address literal (`127.0.0.2`, `::1`, `[::1]`, `::ffff:127.0.0.1`) read as one.
pub fn address(text: &str) -> Option<IpAddr> {
    let t = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    t.parse().ok()
}

/// Whether `addr` is loopback, IPv4 mapped into IPv6 included.
pub fn is_loopback_address(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(a.is_loopback(), |v4| v4.is_loopback()),
    }
}

/// Whether a host (a name or an address, without a port) is loopback: `localhost` in
/// any case, or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || address(host).is_some_and(is_loopback_address)
}

/// The host of `host[:port]` (`[v6]:port`, `v4:port`, `name:port`, or a bare host).
pub fn without_port(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match text.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((h, _)) if !h.contains(':') => h,
        Some(_) => text,
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_as_every_crate_reads_it() {
        for yes in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "0.0.0.0",
            "10.0.0.1",
            "::",
            "::ffff:10.0.0.1",
            "localhost.example.com",
            "example.com",
            "",
            "[::1",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn ports_are_taken_off() {
        for (text, host) in [
            ("127.0.0.1:8080", "127.0.0.1"),
            ("[::1]:8080", "::1"),
            ("[::ffff:127.0.0.1]:5000", "::ffff:127.0.0.1"),
            ("localhost:5000", "localhost"),
            ("example.com", "example.com"),
            ("::1", "::1"),
        ] {
            assert_eq!(without_port(text), host, "{text}");
        }
    }
}
