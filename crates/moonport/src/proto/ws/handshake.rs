//! The WebSocket opening handshake (RFC 6455 §4): on the server, checking an
//! upgrade request, choosing a subprotocol, and the `101 Switching Protocols`
//! answer with its `Sec-WebSocket-Accept` key; on the client, the request
//! and the checks of the server's answer.

use base64::Engine;
use sha1::{Digest, Sha1};

use super::deflate::{self, Params};
use crate::proto::http::Head;

/// Appended to the client's key before hashing (§1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// An upgrade request that passed the checks.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    pub accept: String,
    /// The subprotocol chosen from the client's offer, if any matched.
    pub protocol: Option<String>,
    /// permessage-deflate, when allowed and offered acceptably.
    pub deflate: Option<Params>,
}

/// Why a request is not a usable upgrade, with the HTTP answer to give.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub reason: &'static str,
}

/// Checks `head` as a WebSocket upgrade; `protocols` are the subprotocols the
/// server speaks, in its order of preference; `deflate` allows compression.
pub fn check(head: &Head, protocols: &[String], deflate: bool) -> Result<Accepted, Refused> {
    let refuse = |status, reason| Err(Refused { status, reason });
    if head.method != "GET" || head.version != 1 {
        return refuse(400, "websocket upgrade needs GET and HTTP/1.1");
    }
    if !head.has_token("upgrade", "websocket") || !head.has_token("connection", "upgrade") {
        return refuse(426, "websocket upgrade expected");
    }
    if head.header("sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
        // 426 with `Sec-WebSocket-Version: 13` tells the client what to speak.
        return refuse(426, "websocket version 13 expected");
    }
    let key = head.header("sec-websocket-key").map(<[u8]>::trim_ascii).unwrap_or_default();
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return refuse(400, "bad Sec-WebSocket-Key"),
    }
    let offered: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let protocol = protocols.iter().find(|p| offered.contains(&p.as_bytes())).cloned();
    let offers = head.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"));
    let deflate = if deflate { deflate::negotiate(offers.map(|(_, v)| v.as_slice())) } else { None };
    Ok(Accepted { accept: accept_key(key), protocol, deflate })
}

/// The `101 Switching Protocols` response head.
pub fn response(accepted: &Accepted) -> String {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accepted.accept
    );
    if let Some(p) = &accepted.protocol {
        out.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    if let Some(d) = &accepted.deflate {
        out.push_str(&format!("Sec-WebSocket-Extensions: {}\r\n", d.response()));
    }
    out.push_str("\r\n");
    out
}

/// A fresh `Sec-WebSocket-Key`: 16 unpredictable bytes, base64-encoded.
pub fn client_key() -> String {
    let mut raw = [0u8; 16];
    for part in raw.chunks_mut(4) {
        part.copy_from_slice(&super::session::mask_key());
    }
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The client's upgrade request. `host` is the Host header's value,
/// `target` the path and query; `extra` are more header lines.
pub fn client_request(host: &str, target: &str, key: &str, protocols: &[String], extra: &[(String, String)]) -> String {
    let mut out = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if !protocols.is_empty() {
        out.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", protocols.join(", ")));
    }
    for (n, v) in extra {
        let clean = |s: &str| s.replace(['\r', '\n'], "");
        out.push_str(&format!("{}: {}\r\n", clean(n), clean(v)));
    }
    out.push_str("\r\n");
    out
}

/// Checks the server's answer to `client_request`: returns the subprotocol
/// it chose, which must be one offered.
pub fn check_response(status: u16, head: &Head, key: &str, offered: &[String]) -> Result<Option<String>, &'static str> {
    if status != 101 {
        return Err("websocket upgrade refused");
    }
    if !head.has_token("upgrade", "websocket") || !head.has_token("connection", "upgrade") {
        return Err("websocket upgrade refused");
    }
    let accept = head.header("sec-websocket-accept").map(<[u8]>::trim_ascii);
    if accept != Some(accept_key(key.as_bytes()).as_bytes()) {
        return Err("bad Sec-WebSocket-Accept");
    }
    match head.header("sec-websocket-protocol").map(|p| String::from_utf8_lossy(p.trim_ascii()).into_owned()) {
        None => Ok(None),
        Some(p) if offered.contains(&p) => Ok(Some(p)),
        Some(_) => Err("server chose a subprotocol not offered"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::Limits;

    fn head(extra: &str) -> Head {
        let raw = format!("GET /chat HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        Head::parse(raw.as_bytes(), Limits::default()).unwrap().unwrap().0
    }

    const GOOD: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    #[test]
    fn rfc_sample_key() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let ok = check(&head(GOOD), &[], false).unwrap();
        assert_eq!(ok.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(response(&ok).starts_with("HTTP/1.1 101 "));
    }

    #[test]
    fn picks_the_servers_preferred_subprotocol_among_those_offered() {
        let h = head(&format!("{GOOD}Sec-WebSocket-Protocol: chat, superchat\r\n"));
        let ours = ["superchat".to_string(), "chat".to_string()];
        assert_eq!(check(&h, &ours, false).unwrap().protocol.as_deref(), Some("superchat"));
        assert_eq!(check(&h, &["other".to_string()], false).unwrap().protocol, None);
    }

    #[test]
    fn a_client_request_passes_the_server_check_and_back() {
        let key = client_key();
        assert_ne!(key, client_key());
        let raw = client_request("h:1", "/p?q", &key, &["chat".to_string()], &[("X-A".into(), "b".into())]);
        let head = Head::parse(raw.as_bytes(), Limits::default()).unwrap().unwrap().0;
        let accepted = check(&head, &["chat".to_string()], false).unwrap();
        let answer = response(&accepted);
        let back = Head::parse(
            answer.replace("HTTP/1.1 101 Switching Protocols", "GET / HTTP/1.1").as_bytes(),
            Limits::default(),
        )
        .unwrap()
        .unwrap()
        .0;
        assert_eq!(check_response(101, &back, &key, &["chat".to_string()]), Ok(Some("chat".to_string())));
        assert_eq!(check_response(101, &back, "other", &["chat".to_string()]), Err("bad Sec-WebSocket-Accept"));
        assert_eq!(check_response(200, &back, &key, &[]), Err("websocket upgrade refused"));
    }

    #[test]
    fn refuses_what_is_not_an_upgrade() {
        assert_eq!(check(&head(""), &[], false).unwrap_err().status, 426);
        assert_eq!(check(&head(&GOOD.replace("13", "8")), &[], false).unwrap_err().status, 426);
        assert_eq!(
            check(&head(&GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "short")), &[], false).unwrap_err().status,
            400
        );
    }
}
