//! Asynchronous DNS for the workers: names to addresses (A/AAAA), addresses
//! to names (PTR), honouring the hosts file and resolv.conf (name servers,
//! search list, ndots, timeout, attempts), with a bounded per-worker cache.
//!
//! Queries go out over the worker's own completion-based sockets, so a lookup
//! suspends only its coroutine. Where the platform keeps no resolv.conf
//! (Windows) and no name server was configured, names go to the system
//! resolver on a blocking thread instead, never on the worker's thread.

mod cache;
pub mod config;
mod transport;
mod wire;

use std::cell::RefCell;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join;

use crate::net::addr::Family;
use cache::Cache;
use config::{SystemConfig, normalize};
use wire::{Answer, Question, Reply, Rtype};

/// How many CNAMEs a lookup follows before giving up on a loop.
const MAX_CNAME_HOPS: usize = 8;

/// Answers kept per worker unless configured otherwise.
pub const DEFAULT_CACHE_SIZE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist, or has no address of the family asked for.
    NotFound,
    /// No server answered in time.
    Timeout,
    /// The servers answered with an error (SERVFAIL, REFUSED, ...).
    ServerFailure,
    /// The server's port is closed.
    Refused,
    /// Not a valid domain name.
    InvalidName,
    Io(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DnsError::NotFound => "not found",
            DnsError::Timeout => "timeout",
            DnsError::ServerFailure => "server failure",
            DnsError::Refused => "refused",
            DnsError::InvalidName => "invalid name",
            DnsError::Io(e) => e,
        })
    }
}

impl std::error::Error for DnsError {}

/// What a forward lookup found, shaped like C's `hostent`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostEnt {
    pub name: String,
    pub aliases: Vec<String>,
    pub addrs: Vec<IpAddr>,
}

/// Per-call choices; `None` takes the resolver's setting.
#[derive(Debug, Clone, Default)]
pub struct LookupOptions {
    pub family: Option<Family>,
    /// The whole call's deadline.
    pub timeout: Option<Duration>,
    pub nameservers: Option<Vec<SocketAddr>>,
}

/// Settings a script may change with `moonport.dns.configure`: resolv.conf's
/// fields, starting from what the system's file says.
pub type Settings = config::ResolvConf;

/// One worker's resolver.
pub struct Resolver {
    system: Arc<SystemConfig>,
    settings: RefCell<Settings>,
    cache: RefCell<Cache>,
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new()
    }
}

impl Resolver {
    pub fn new() -> Self {
        let system = SystemConfig::get();
        let settings = system.resolv.clone();
        Self { system, settings: RefCell::new(settings), cache: RefCell::new(Cache::new(DEFAULT_CACHE_SIZE)) }
    }

    pub fn settings(&self) -> Settings {
        self.settings.borrow().clone()
    }

    pub fn configure(&self, settings: Settings) {
        *self.settings.borrow_mut() = settings;
    }

    pub fn set_cache_size(&self, size: usize) {
        self.cache.borrow_mut().set_capacity(size);
    }

    /// The addresses of `name`, IPv4 first.
    pub async fn lookup(&self, name: &str, opts: &LookupOptions) -> Result<HostEnt, DnsError> {
        if let Some(ip) = crate::net::addr::parse_ip(name) {
            return match opts.family {
                Some(f) if f != Family::of(&ip) => Err(DnsError::NotFound),
                _ => Ok(HostEnt { name: ip.to_string(), aliases: Vec::new(), addrs: vec![ip] }),
            };
        }
        // A trailing dot makes the name absolute: no search list.
        let absolute = name.ends_with('.');
        let name = normalize(name);
        if name.is_empty() {
            return Err(DnsError::InvalidName);
        }
        let wanted = |ip: &IpAddr| opts.family.is_none_or(|f| f == Family::of(ip));
        let static_addrs: Vec<IpAddr> = self.system.hosts.lookup(&name).iter().copied().filter(wanted).collect();
        if !static_addrs.is_empty() {
            return Ok(HostEnt { name, aliases: Vec::new(), addrs: static_addrs });
        }
        let settings = self.settings();
        let servers = opts.nameservers.clone().unwrap_or_else(|| settings.nameservers.clone());
        let deadline = self.deadline(&settings, &servers, opts);
        if servers.is_empty() {
            return within(deadline, system_lookup(name, opts.family)).await;
        }
        let types: &[Rtype] = match opts.family {
            Some(Family::Inet) => &[Rtype::A],
            Some(Family::Inet6) => &[Rtype::Aaaa],
            None => &[Rtype::A, Rtype::Aaaa],
        };
        let mut failure = None;
        for candidate in candidates(&name, absolute, &settings) {
            let result = match types {
                [one] => self.query(&candidate, *one, &servers, &settings, deadline).await.map(|a| vec![a]),
                _ => {
                    let (a, aaaa) = join(
                        self.query(&candidate, Rtype::A, &servers, &settings, deadline),
                        self.query(&candidate, Rtype::Aaaa, &servers, &settings, deadline),
                    )
                    .await;
                    both(a, aaaa)
                }
            };
            match result {
                Ok(answers) => return Ok(host_ent(answers)),
                Err(DnsError::NotFound) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        Err(failure.unwrap_or(DnsError::NotFound))
    }

    /// The name of `ip`: the hosts file's, else its PTR record's.
    pub async fn reverse(&self, ip: IpAddr, opts: &LookupOptions) -> Result<String, DnsError> {
        if let Some(name) = self.system.hosts.reverse(&ip) {
            return Ok(name.to_string());
        }
        let settings = self.settings();
        let servers = opts.nameservers.clone().unwrap_or_else(|| settings.nameservers.clone());
        if servers.is_empty() {
            return Err(DnsError::NotFound);
        }
        let deadline = self.deadline(&settings, &servers, opts);
        let q = Question::reverse(ip);
        match self.ask(&ip.to_string(), q, &servers, &settings, deadline).await? {
            Reply::Answer(answer) => answer.names.into_iter().next().ok_or(DnsError::NotFound),
            _ => Err(DnsError::NotFound),
        }
    }

    /// The call's deadline: the caller's timeout, or every try of every server.
    fn deadline(&self, settings: &Settings, servers: &[SocketAddr], opts: &LookupOptions) -> Instant {
        let all_tries = settings.timeout * (settings.attempts * servers.len().max(1)) as u32;
        Instant::now() + opts.timeout.unwrap_or(all_tries)
    }

    /// Asks for `name`'s records, following CNAMEs the server did not resolve.
    async fn query(
        &self,
        name: &str,
        rtype: Rtype,
        servers: &[SocketAddr],
        settings: &Settings,
        deadline: Instant,
    ) -> Result<Answer, DnsError> {
        let mut aliases = Vec::new();
        let mut name = name.to_string();
        for _ in 0..MAX_CNAME_HOPS {
            let q = Question::new(&name, rtype)?;
            match self.ask(&name, q, servers, settings, deadline).await? {
                Reply::Alias(hop) => {
                    aliases.extend(hop.aliases);
                    name = hop.canonical;
                }
                Reply::Answer(mut answer) => {
                    aliases.append(&mut answer.aliases);
                    answer.aliases = aliases;
                    return Ok(answer);
                }
                _ => return Err(DnsError::NotFound),
            }
        }
        Err(DnsError::ServerFailure)
    }

    /// Asks the servers in turn, round after round, from the cache first.
    /// Returns an `Answer` or an `Alias`; anything else is an error.
    async fn ask(
        &self,
        key: &str,
        q: Question,
        servers: &[SocketAddr],
        settings: &Settings,
        deadline: Instant,
    ) -> Result<Reply, DnsError> {
        let server_key = servers.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
        let rtype = q.rtype();
        if let Some(entry) = self.cache.borrow_mut().get(&server_key, key, rtype) {
            return entry.ok_or(DnsError::NotFound);
        }
        let mut failure = DnsError::Timeout;
        for _ in 0..settings.attempts.max(1) {
            for server in servers {
                let now = Instant::now();
                if now >= deadline {
                    return Err(DnsError::Timeout);
                }
                let try_deadline = (now + settings.timeout).min(deadline);
                match transport::exchange(*server, &q, try_deadline).await {
                    Ok(reply @ (Reply::Answer(_) | Reply::Alias(_))) => {
                        let ttl = reply.answer().map_or(0, |a| a.ttl);
                        self.cache.borrow_mut().put(&server_key, key, rtype, Some(reply.clone()), ttl);
                        return Ok(reply);
                    }
                    Ok(Reply::NotFound { ttl }) => {
                        self.cache.borrow_mut().put(&server_key, key, rtype, None, ttl);
                        return Err(DnsError::NotFound);
                    }
                    Ok(Reply::Failed | Reply::Truncated) => failure = DnsError::ServerFailure,
                    // No answer in time, or a closed port (like no server, as
                    // in C): try the next server; the deadline decides.
                    Err(DnsError::Timeout | DnsError::Refused) => {}
                    Err(e) => failure = e,
                }
            }
        }
        Err(failure)
    }
}

/// The names to try for `name`, in order, per the search list and ndots.
fn candidates(name: &str, absolute: bool, settings: &Settings) -> Vec<String> {
    let searched = settings.search.iter().map(|domain| format!("{name}.{domain}"));
    let dots = name.matches('.').count();
    if absolute || settings.search.is_empty() {
        vec![name.to_string()]
    } else if dots >= settings.ndots {
        std::iter::once(name.to_string()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_string())).collect()
    }
}

/// Joins the A and AAAA results: found if either found.
fn both(a: Result<Answer, DnsError>, aaaa: Result<Answer, DnsError>) -> Result<Vec<Answer>, DnsError> {
    match (a, aaaa) {
        (Ok(a), Ok(b)) => Ok(vec![a, b]),
        (Ok(a), Err(_)) | (Err(_), Ok(a)) => Ok(vec![a]),
        (Err(DnsError::NotFound), Err(e)) | (Err(e), Err(_)) => Err(e),
    }
}

fn host_ent(answers: Vec<Answer>) -> HostEnt {
    let mut ent = HostEnt::default();
    for answer in answers {
        if ent.name.is_empty() {
            ent.name = answer.canonical;
            ent.aliases = answer.aliases;
        }
        ent.addrs.extend(answer.addrs);
    }
    ent
}

async fn within<T>(deadline: Instant, fut: impl Future<Output = Result<T, DnsError>>) -> Result<T, DnsError> {
    compio::time::timeout_at(deadline, fut).await.unwrap_or(Err(DnsError::Timeout))
}

/// The platform's own resolver (getaddrinfo), on a blocking thread.
async fn system_lookup(name: String, family: Option<Family>) -> Result<HostEnt, DnsError> {
    let lookup = name.clone();
    let found =
        compio::runtime::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs().map(|a| a.collect::<Vec<_>>()))
            .await
            .map_err(|_| DnsError::Io("resolver thread failed".into()))?;
    let mut addrs: Vec<IpAddr> = found
        .map_err(|_| DnsError::NotFound)?
        .into_iter()
        .map(|a| a.ip())
        .filter(|ip| family.is_none_or(|f| f == Family::of(ip)))
        .collect();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(DnsError::NotFound);
    }
    addrs.sort_by_key(|ip| ip.is_ipv6());
    Ok(HostEnt { name, aliases: Vec::new(), addrs })
}
