//! DNS messages on the wire, through hickory-proto's codec: building a query
//! and reading what a reply says about it (addresses, the CNAME chain, PTR
//! names, how long it may be cached).

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::DnsError;

/// The record types moonport asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rtype {
    A,
    Aaaa,
    Ptr,
}

impl Rtype {
    fn record_type(self) -> RecordType {
        match self {
            Rtype::A => RecordType::A,
            Rtype::Aaaa => RecordType::AAAA,
            Rtype::Ptr => RecordType::PTR,
        }
    }
}

/// The largest UDP reply we invite (EDNS0); larger ones come truncated and
/// are fetched again over TCP. 1232 avoids IP fragmentation on any path.
pub const UDP_PAYLOAD: u16 = 1232;

/// A question, kept to check that a reply answers it.
#[derive(Debug, Clone)]
pub struct Question {
    pub id: u16,
    name: Name,
    rtype: Rtype,
}

impl Question {
    /// A question for `name` (absolute; IDNA names are converted to ASCII).
    pub fn new(name: &str, rtype: Rtype) -> Result<Self, DnsError> {
        let mut name = Name::from_utf8(name).map_err(|_| DnsError::InvalidName)?;
        name.set_fqdn(true);
        Ok(Self { id: rand::random(), name, rtype })
    }

    /// The question for the reverse (PTR) name of an address.
    pub fn reverse(ip: IpAddr) -> Self {
        Self { id: rand::random(), name: Name::from(ip), rtype: Rtype::Ptr }
    }

    pub fn rtype(&self) -> Rtype {
        self.rtype
    }

    pub fn encode(&self) -> Result<Vec<u8>, DnsError> {
        let mut msg = Message::new(self.id, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(self.name.clone(), self.rtype.record_type()));
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        msg.set_edns(edns);
        msg.to_vec().map_err(|e| DnsError::Io(e.to_string()))
    }
}

/// What a reply says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub addrs: Vec<IpAddr>,
    /// PTR targets, without the trailing dot.
    pub names: Vec<String>,
    /// The names a CNAME chain went through, the queried name first.
    pub aliases: Vec<String>,
    /// The end of the CNAME chain: the name the addresses belong to.
    pub canonical: String,
    /// Seconds the answer (or, when empty, its absence) may be cached.
    pub ttl: u32,
}

/// How a server answered.
#[derive(Debug, Clone)]
pub enum Reply {
    Answer(Answer),
    /// The name does not exist, or has no record of this type; cacheable for `ttl`.
    NotFound {
        ttl: u32,
    },
    /// Only a CNAME chain ending at a name whose records the server left out
    /// (it is not recursive for it): ask again for that name.
    Alias(Answer),
    /// Too big for UDP: ask again over TCP.
    Truncated,
    /// SERVFAIL, REFUSED and the like: ask another server.
    Failed,
}

impl Reply {
    /// The records an `Answer` or `Alias` carries.
    pub fn answer(&self) -> Option<&Answer> {
        match self {
            Reply::Answer(a) | Reply::Alias(a) => Some(a),
            _ => None,
        }
    }
}

/// How long a negative answer is kept when the server says nothing (no SOA).
const DEFAULT_NEGATIVE_TTL: u32 = 30;
/// Cap on negative caching, as RFC 2308 suggests for resolvers.
const MAX_NEGATIVE_TTL: u32 = 300;

/// Decodes a reply; `None` when it is not a reply to `q` (a stray or forged
/// datagram), so the caller keeps waiting.
pub fn decode(bytes: &[u8], q: &Question) -> Option<Reply> {
    let msg = Message::from_vec(bytes).ok()?;
    if msg.metadata.id != q.id || msg.metadata.message_type != MessageType::Response {
        return None;
    }
    let echoes_q = msg.queries.len() == 1
        && msg.queries[0].name() == &q.name
        && msg.queries[0].query_type() == q.rtype.record_type();
    // Some servers send a truncated reply without the question section.
    if msg.metadata.truncation && (echoes_q || msg.queries.is_empty()) {
        return Some(Reply::Truncated);
    }
    if !echoes_q {
        return None;
    }
    match msg.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Some(Reply::NotFound { ttl: negative_ttl(&msg) }),
        _ => return Some(Reply::Failed),
    }
    // Follow the CNAME chain from the question's name; records for names
    // outside it are ignored.
    let mut chain = vec![q.name.clone()];
    let mut answer = Answer { ttl: u32::MAX, ..Answer::default() };
    for _ in 0..msg.answers.len() {
        let current = chain.last().cloned()?;
        let next = msg.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == current => Some((target.0.clone(), r.ttl)),
            _ => None,
        });
        match next {
            Some((target, ttl)) if !chain.contains(&target) => {
                answer.ttl = answer.ttl.min(ttl);
                chain.push(target);
            }
            _ => break,
        }
    }
    for r in &msg.answers {
        if !chain.contains(&r.name) {
            continue;
        }
        match (&r.data, q.rtype) {
            (RData::A(a), Rtype::A) => answer.addrs.push(IpAddr::V4(a.0)),
            (RData::AAAA(a), Rtype::Aaaa) => answer.addrs.push(IpAddr::V6(a.0)),
            (RData::PTR(p), Rtype::Ptr) => answer.names.push(text(&p.0)),
            _ => continue,
        }
        answer.ttl = answer.ttl.min(r.ttl);
    }
    answer.canonical = chain.last().map(text).unwrap_or_default();
    answer.aliases = chain[..chain.len() - 1].iter().map(text).collect();
    if answer.addrs.is_empty() && answer.names.is_empty() {
        if chain.len() > 1 {
            return Some(Reply::Alias(answer));
        }
        // NODATA: the name exists without records of this type.
        return Some(Reply::NotFound { ttl: negative_ttl(&msg) });
    }
    Some(Reply::Answer(answer))
}

/// RFC 2308: a negative answer lives as long as the SOA's TTL and MINIMUM allow.
fn negative_ttl(msg: &Message) -> u32 {
    msg.authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })
        .unwrap_or(DEFAULT_NEGATIVE_TTL)
        .min(MAX_NEGATIVE_TTL)
}

fn text(name: &Name) -> String {
    name.to_utf8().trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, CNAME};

    fn reply_to(q: &Question, answers: Vec<Record>) -> Vec<u8> {
        let mut msg = Message::new(q.id, MessageType::Response, OpCode::Query);
        msg.add_query(Query::query(q.name.clone(), q.rtype.record_type()));
        msg.answers = answers;
        msg.to_vec().unwrap()
    }

    #[test]
    fn follows_cnames_and_takes_min_ttl() {
        let q = Question::new("www.example.test", Rtype::A).unwrap();
        let www = Name::from_ascii("www.example.test.").unwrap();
        let web = Name::from_ascii("web.example.test.").unwrap();
        let other = Name::from_ascii("other.test.").unwrap();
        let bytes = reply_to(
            &q,
            vec![
                Record::from_rdata(www, 300, RData::CNAME(CNAME(web.clone()))),
                Record::from_rdata(web, 60, RData::A(A::new(10, 0, 0, 7))),
                Record::from_rdata(other, 5, RData::A(A::new(6, 6, 6, 6))),
            ],
        );
        let Some(Reply::Answer(a)) = decode(&bytes, &q) else { panic!("no answer") };
        assert_eq!(a.addrs, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(a.canonical, "web.example.test");
        assert_eq!(a.aliases, vec!["www.example.test"]);
        assert_eq!(a.ttl, 60);
    }

    #[test]
    fn ignores_replies_to_other_questions() {
        let q = Question::new("a.test", Rtype::A).unwrap();
        let mut other = q.clone();
        other.id = q.id.wrapping_add(1);
        assert!(decode(&reply_to(&other, vec![]), &q).is_none());
        assert!(decode(b"\x00\x01garbage", &q).is_none());
        assert!(matches!(decode(&reply_to(&q, vec![]), &q), Some(Reply::NotFound { ttl: DEFAULT_NEGATIVE_TTL })));
    }

    #[test]
    fn rejects_bad_names() {
        assert!(Question::new(&"a".repeat(64), Rtype::A).is_err());
        assert!(Question::new("a..b", Rtype::A).is_err());
    }
}
