//! Address translation in the classic sockets vocabulary: dotted IPv4 text to
//! and from the integer C's `inet_addr` returns, presentation text to and from
//! raw bytes (`inet_pton` / `inet_ntop`), and `host:port` endpoint text.
//!
//! Parsing is strict: anything that is not exactly an address is refused
//! (`"1.2.3"`, `"256.1.1.1"`, `"01.2.3.4"`), never read as some other address
//! the way C's permissive `inet_aton` would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An address family, named as scripts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() { Family::Inet } else { Family::Inet6 }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "inet" => Some(Family::Inet),
            "inet6" => Some(Family::Inet6),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        }
    }
}

/// The IPv4 address as the `in_addr_t` C's `inet_addr` returns: its bytes in
/// memory are in network order, read as a native integer.
pub fn inet_addr(text: &str) -> Option<u32> {
    let ip: Ipv4Addr = text.parse().ok()?;
    Some(u32::from_ne_bytes(ip.octets()))
}

/// The dotted text of an `in_addr_t` (the inverse of [`inet_addr`]).
pub fn inet_ntoa(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(n.to_ne_bytes())
}

/// The raw network-order bytes of an address: 4 for inet, 16 for inet6.
pub fn inet_pton(family: Family, text: &str) -> Option<Vec<u8>> {
    match family {
        Family::Inet => text.parse::<Ipv4Addr>().ok().map(|ip| ip.octets().to_vec()),
        Family::Inet6 => text.parse::<Ipv6Addr>().ok().map(|ip| ip.octets().to_vec()),
    }
}

/// The canonical text of raw address bytes (IPv6 in its compressed form).
pub fn inet_ntop(family: Family, bytes: &[u8]) -> Option<IpAddr> {
    match family {
        Family::Inet => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        Family::Inet6 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
    }
}

/// Parses an IP literal; IPv6 may come in brackets (`[::1]`).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    inner.parse().ok()
}

/// Parses `1.2.3.4:80` or `[::1]:8080`.
pub fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_addr_matches_c() {
        // C: inet_addr("10.0.0.1") has the bytes 0a 00 00 01 in memory.
        let n = inet_addr("10.0.0.1").unwrap();
        assert_eq!(n.to_ne_bytes(), [10, 0, 0, 1]);
        assert_eq!(inet_ntoa(n).to_string(), "10.0.0.1");
        for bad in ["256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "", " 1.2.3.4", "1.2.3.4 ", "a.b.c.d"] {
            assert_eq!(inet_addr(bad), None, "{bad}");
        }
    }

    #[test]
    fn pton_ntop_round_trip() {
        let b = inet_pton(Family::Inet6, "2001:db8:0:0:0:0:0:1").unwrap();
        assert_eq!(b.len(), 16);
        assert_eq!(inet_ntop(Family::Inet6, &b).unwrap().to_string(), "2001:db8::1");
        assert_eq!(inet_pton(Family::Inet6, "::g"), None);
        assert_eq!(inet_pton(Family::Inet, "::1"), None);
        assert_eq!(inet_ntop(Family::Inet, &[1, 2, 3]), None);
        assert_eq!(inet_ntop(Family::Inet6, &[0; 4]), None);
    }

    #[test]
    fn endpoints() {
        assert_eq!(parse_endpoint("[::1]:8080").unwrap().port(), 8080);
        assert_eq!(parse_endpoint("1.2.3.4:80").unwrap().ip().to_string(), "1.2.3.4");
        assert_eq!(parse_endpoint("1.2.3.4"), None);
        assert_eq!(parse_endpoint("1.2.3.4:65536"), None);
        assert_eq!(parse_ip("[::1]").unwrap().to_string(), "::1");
    }
}
