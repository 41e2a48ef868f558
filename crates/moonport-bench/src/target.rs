//! Target address validation: the load generator may only send traffic to
//! loopback addresses (127.0.0.0/8 or ::1), never to any other host.

use std::net::{Ipv4Addr, SocketAddr};

/// Resolves `addr` and returns it only if every resolved address is loopback.
///
/// Accepts `IP:PORT`, `[IPv6]:PORT` and `localhost:PORT` (as 127.0.0.1). IPv4-mapped IPv6
/// addresses (`::ffff:127.0.0.1`) count as their IPv4 form.
pub fn resolve_loopback(addr: &str) -> Result<SocketAddr, String> {
    // Only literal IPs and `localhost` are accepted: resolving any other
    // name could send a DNS query off the machine.
    let resolved: Vec<SocketAddr> = match addr.parse::<SocketAddr>() {
        Ok(sa) => vec![sa],
        Err(_) => match addr.rsplit_once(':') {
            Some((host, port)) if host.eq_ignore_ascii_case("localhost") => {
                let port: u16 = port.parse().map_err(|_| format!("bad port in target address {addr:?}"))?;
                vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))]
            }
            _ => {
                return Err(format!("target address {addr:?} must be IP:PORT, [IPv6]:PORT or localhost:PORT"));
            }
        },
    };
    let Some(first) = resolved.first().copied() else {
        return Err(format!("target address {addr:?} resolved to nothing"));
    };
    if let Some(bad) = resolved.iter().find(|sa| !is_loopback(sa)) {
        return Err(format!(
            "refusing to target {addr:?} ({bad}): only loopback addresses \
             (127.0.0.0/8 or ::1) are allowed as benchmark targets"
        ));
    }
    if first.port() == 0 {
        return Err(format!("target address {addr:?} has port 0"));
    }
    Ok(first)
}

fn is_loopback(sa: &SocketAddr) -> bool {
    sa.ip().to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::resolve_loopback;

    #[test]
    fn accepts_loopback() {
        assert!(resolve_loopback("127.0.0.1:7000").is_ok());
        assert!(resolve_loopback("127.1.2.3:7000").is_ok());
        assert!(resolve_loopback("[::1]:7000").is_ok());
        assert!(resolve_loopback("[::ffff:127.0.0.1]:7000").is_ok());
        assert!(resolve_loopback("localhost:7000").is_ok());
    }

    #[test]
    fn refuses_other_hosts() {
        for addr in [
            "10.0.0.1:80",
            "192.168.1.1:80",
            "8.8.8.8:53",
            "0.0.0.0:7000",
            "[::]:7000",
            "[2001:db8::1]:80",
            "[::ffff:10.0.0.1]:80",
        ] {
            let err = resolve_loopback(addr).unwrap_err();
            assert!(err.contains("refusing"), "{addr}: {err}");
        }
        // Names other than localhost are not resolved at all.
        assert!(resolve_loopback("example.com:80").is_err());
    }

    #[test]
    fn refuses_port_zero() {
        assert!(resolve_loopback("127.0.0.1:0").is_err());
    }
}
