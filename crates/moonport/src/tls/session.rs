//! One connection's TLS record layer: ciphertext that arrived goes in and
//! plaintext comes out, plaintext to send goes in and records come out. It
//! does no I/O itself; `net::TcpConn` moves the bytes, so the parked-read
//! and write-queue rules of plain connections hold for TLS ones too.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// What a finished handshake agreed on, for scripts (`conn:tls_info()`).
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    pub alpn: Option<Vec<u8>>,
    /// The name the client asked for (SNI), on the server side.
    pub server_name: Option<String>,
    /// The peer's end-entity certificate (DER), when it sent one: a server
    /// always does, a client when the listener asked and it had one.
    pub peer_certificate: Option<Vec<u8>>,
}

pub struct TlsSession {
    conn: Connection,
}

impl TlsSession {
    pub fn server(config: Arc<ServerConfig>) -> Result<Self, String> {
        let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
        Ok(Self { conn: conn.into() })
    }

    /// A client session that checks the server's certificate against `name`
    /// (a host name, or an IP address for certificates that name one).
    pub fn client(config: Arc<ClientConfig>, name: &str) -> Result<Self, String> {
        let name = ServerName::try_from(name.to_string()).map_err(|_| format!("invalid server name {name}"))?;
        let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        Ok(Self { conn: conn.into() })
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether records (handshake messages, alerts) wait to be sent.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Takes in received ciphertext and appends the plaintext it carried to
    /// `plain`. A protocol error queues an alert for the peer (`take_output`)
    /// and is returned described (see `describe`).
    /// Returns whether the peer has sent `close_notify`.
    pub fn receive(&mut self, mut cipher: &[u8], plain: &mut Vec<u8>) -> Result<bool, String> {
        let mut closed = false;
        // rustls takes at most one buffer's worth per call and holds little
        // plaintext, so feed and drain in turns.
        while !cipher.is_empty() {
            self.conn.read_tls(&mut cipher).map_err(|e| e.to_string())?;
            let state = self.conn.process_new_packets().map_err(describe)?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = plain.len();
                plain.resize(start + n, 0);
                self.conn.reader().read_exact(&mut plain[start..]).map_err(|e| e.to_string())?;
            }
            closed |= state.peer_has_closed();
        }
        Ok(closed)
    }

    /// Encrypts `data` into records appended to `out`, with anything else
    /// that was waiting to go (handshake messages, a key update) before it.
    pub fn send(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        loop {
            // rustls buffers a bounded amount of plaintext: write, seal, repeat.
            let n = self.conn.writer().write(data).map_err(|e| e.to_string())?;
            data = &data[n..];
            self.take_output(out);
            if data.is_empty() {
                return Ok(());
            }
        }
    }

    /// Appends every record waiting to be sent to `out`.
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail.
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    /// Queues `close_notify` (the end of what this side sends) into `out`.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        self.conn.send_close_notify();
        self.take_output(out);
    }

    pub fn info(&self) -> TlsInfo {
        let (server_name, peer_certificate) = match &self.conn {
            Connection::Server(s) => (s.server_name().map(str::to_string), s.peer_certificates()),
            Connection::Client(c) => (None, c.peer_certificates()),
        };
        TlsInfo {
            version: self.conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
            cipher: self.conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default(),
            alpn: self.conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            peer_certificate: peer_certificate.and_then(|c| c.first()).map(|c| c.to_vec()),
        }
    }
}

/// Says what went wrong in the words a script's author needs: the usual
/// certificate problems plainly, anything else as rustls puts it.
fn describe(e: rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = &e else { return e.to_string() };
    match cert {
        C::UnknownIssuer => "certificate not trusted (unknown issuer)".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => "certificate does not match the server name".into(),
        C::Expired | C::ExpiredContext { .. } => "certificate expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".into(),
        C::BadSignature => "certificate has a bad signature".into(),
        C::Revoked => "certificate revoked".into(),
        _ => e.to_string(),
    }
}
