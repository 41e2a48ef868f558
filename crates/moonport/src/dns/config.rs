//! The system's resolver configuration: name servers, search list and
//! options from resolv.conf, and the static names of the hosts file. Both are
//! read once per process, at the first lookup.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::net::addr::{parse_endpoint, parse_ip};
use crate::platform;

pub const DNS_PORT: u16 = 53;

/// What resolv.conf says (the fields moonport uses).
#[derive(Debug, Clone)]
pub struct ResolvConf {
    pub nameservers: Vec<SocketAddr>,
    pub search: Vec<String>,
    /// Names with at least this many dots are tried as given before the search list.
    pub ndots: usize,
    /// How long one query waits for one server.
    pub timeout: Duration,
    /// How many rounds over the server list.
    pub attempts: usize,
}

impl Default for ResolvConf {
    fn default() -> Self {
        Self { nameservers: Vec::new(), search: Vec::new(), ndots: 1, timeout: Duration::from_secs(5), attempts: 2 }
    }
}

impl ResolvConf {
    /// Parses resolv.conf text; unknown lines are ignored, as the C library does.
    pub fn parse(text: &str) -> Self {
        let mut conf = Self::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(addr) = words.next().and_then(parse_nameserver) {
                        conf.nameservers.push(addr);
                    }
                }
                // The last search or domain line wins.
                Some("search") => conf.search = words.map(normalize).filter(|w| !w.is_empty()).collect(),
                Some("domain") => conf.search = words.next().map(normalize).into_iter().collect(),
                Some("options") => {
                    for opt in words {
                        let (key, value) = opt.split_once(':').unwrap_or((opt, ""));
                        let n = value.parse::<u64>().ok();
                        match (key, n) {
                            ("ndots", Some(n)) => conf.ndots = n.min(15) as usize,
                            ("timeout", Some(n)) => conf.timeout = Duration::from_secs(n.clamp(1, 30)),
                            ("attempts", Some(n)) => conf.attempts = n.clamp(1, 5) as usize,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        conf
    }
}

/// A name server as scripts and resolv.conf write it: `ip`, `ip:port`, `[ip6]:port`.
pub fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    parse_endpoint(text).or_else(|| parse_ip(text).map(|ip| SocketAddr::new(ip, DNS_PORT)))
}

/// A name in the form used for comparisons: lower case, no trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The hosts file: static names for addresses.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_addr: HashMap<IpAddr, String>,
}

impl Hosts {
    pub fn parse(text: &str) -> Self {
        let mut hosts = Self::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(ip) = words.next().and_then(parse_ip) else { continue };
            for (i, name) in words.enumerate() {
                let name = normalize(name);
                let addrs = hosts.by_name.entry(name.clone()).or_default();
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
                // The first (canonical) name of the first line for an address wins.
                if i == 0 {
                    hosts.by_addr.entry(ip).or_insert(name);
                }
            }
        }
        hosts
    }

    pub fn lookup(&self, name: &str) -> &[IpAddr] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn reverse(&self, ip: &IpAddr) -> Option<&str> {
        self.by_addr.get(ip).map(String::as_str)
    }
}

/// Both files, as read at the first lookup.
#[derive(Debug, Clone, Default)]
pub struct SystemConfig {
    pub resolv: ResolvConf,
    pub hosts: Hosts,
}

impl SystemConfig {
    /// The process-wide configuration, read on first use. Missing files give
    /// the C library's defaults: name servers on the local host where the
    /// platform uses resolv.conf, none (the system resolver) elsewhere.
    pub fn get() -> Arc<SystemConfig> {
        static SYSTEM: OnceLock<Arc<SystemConfig>> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let (hosts_path, resolv_path) = platform::dns_config_paths();
                let hosts = std::fs::read_to_string(hosts_path).map(|t| Hosts::parse(&t)).unwrap_or_default();
                let resolv = resolv_path.map(|path| {
                    let mut conf = std::fs::read_to_string(path).map(|t| ResolvConf::parse(&t)).unwrap_or_default();
                    if conf.nameservers.is_empty() {
                        conf.nameservers = vec![SocketAddr::from(([127, 0, 0, 1], DNS_PORT))];
                    }
                    conf
                });
                Arc::new(SystemConfig { resolv: resolv.unwrap_or_default(), hosts })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let conf = ResolvConf::parse(
            "# comment\nnameserver 10.0.0.2\nnameserver ::1 # v6\nnameserver bogus\nsearch Example.COM. b.test\n\
             options ndots:2 timeout:3 attempts:9 rotate\n",
        );
        assert_eq!(conf.nameservers, vec!["10.0.0.2:53".parse().unwrap(), "[::1]:53".parse().unwrap()]);
        assert_eq!(conf.search, vec!["example.com", "b.test"]);
        assert_eq!((conf.ndots, conf.timeout, conf.attempts), (2, Duration::from_secs(3), 5));
    }

    #[test]
    fn hosts_file() {
        let hosts =
            Hosts::parse("127.0.0.1 localhost Loopback\n::1 localhost ip6-localhost\n# x\n10.1.1.1 a.test\nbad line\n");
        assert_eq!(hosts.lookup("localhost").len(), 2);
        assert_eq!(hosts.lookup("loopback"), ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(hosts.reverse(&"10.1.1.1".parse().unwrap()), Some("a.test"));
        assert!(hosts.lookup("bad").is_empty());
    }
}
