//! TLS end to end. Certificates are made fresh for each test with `rcgen`
//! (a CA, a server certificate for localhost / 127.0.0.1 / ::1, a client
//! certificate from the CA, and one from another CA). The Lua suite
//! (tests/lua/tls_test.lua) runs moonport's clients against its servers;
//! the other tests put an independent TLS stack on the other end: OpenSSL,
//! through Python's ssl module (tests/tls/openssl_peer.py).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{IO_TIMEOUT, Moonport};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A folder of PEM files, removed when dropped.
struct Certs(PathBuf);

impl Certs {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("moonport-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the certificate folder");
        let ca = authority("moonport test CA");
        let rogue = authority("somebody else's CA");
        leaf(&dir, "server", &ca, &["localhost", "127.0.0.1", "::1"], ExtendedKeyUsagePurpose::ServerAuth);
        leaf(&dir, "client", &ca, &[], ExtendedKeyUsagePurpose::ClientAuth);
        leaf(&dir, "rogue", &rogue, &[], ExtendedKeyUsagePurpose::ClientAuth);
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
        Self(dir)
    }

    fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA certificate")
}

/// Writes NAME.pem and NAME.key: a certificate for `names` signed by `ca`.
fn leaf(dir: &Path, name: &str, ca: &CertifiedIssuer<'_, KeyPair>, names: &[&str], usage: ExtendedKeyUsagePurpose) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, ca).expect("leaf certificate");
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write certificate");
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("tls").join("openssl_peer.py")
}

#[test]
fn lua_suite_clients_and_servers() {
    let certs = Certs::new("suite");
    let out = Moonport::new("tls_test.lua").workers(1).arg(certs.dir().display()).run(Duration::from_secs(60));
    assert_eq!(out.code(), Some(0), "--- stdout ---\n{}\n--- stderr ---\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(" passed, 0 failed"), "no tally:\n{}", out.stdout);
}

#[test]
#[cfg_attr(windows, ignore = "the OpenSSL peer is a Linux python3 program the tests cannot start under Wine")]
fn openssl_clients_against_moonport_servers() {
    let certs = Certs::new("servers");
    let srv = Moonport::new("tls_server.lua").workers(1).arg(certs.dir().display()).start();
    let mut ports = String::new();
    assert!(srv.wait_log_until(IO_TIMEOUT, |_| {
        ports = srv.stdout();
        ports.contains("ports ")
    }));
    let ports: Vec<&str> = ports.trim().trim_start_matches("ports ").split(' ').collect();
    let out = Command::new("python3")
        .arg(peer_script())
        .arg("client")
        .arg(certs.dir())
        .args(&ports)
        .output()
        .expect("python3 runs (scripts/setup installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "--- peer stdout ---\n{stdout}\n--- peer stderr ---\n{}\n--- moonport log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        srv.log()
    );
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 6, "{stdout}");
    // The refused handshakes were logged with their reason.
    assert!(srv.wait_log("tls handshake failed", IO_TIMEOUT), "{}", srv.log());
}

#[test]
#[cfg_attr(windows, ignore = "the OpenSSL peer is a Linux python3 program the tests cannot start under Wine")]
fn moonport_client_against_an_openssl_server() {
    let certs = Certs::new("client");
    let mut peer = Command::new("python3")
        .arg(peer_script())
        .arg("serve")
        .arg(certs.dir())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/setup installs it)");
    let mut stdout = BufReader::new(peer.stdout.take().expect("piped stdout"));
    let mut port = String::new();
    stdout.read_line(&mut port).expect("the peer's port");
    let out = Moonport::new("tls_client.lua")
        .workers(1)
        .arg(certs.dir().display())
        .arg(port.trim())
        .run(Duration::from_secs(20));
    assert_eq!(out.code(), Some(0), "--- stdout ---\n{}\n--- stderr ---\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("reply FROM MOONPORT TLSv1_3"), "{}", out.stdout);
    let mut served = String::new();
    stdout.read_line(&mut served).expect("the peer's verdict");
    assert_eq!(served.trim(), "ok served from moonport");
    assert!(peer.wait().expect("the peer exits").success());
}

/// A TLS client (rustls) for `addr` that trusts the test CA and may present
/// the test client certificate.
fn rustls_client(
    certs: &Certs,
    addr: std::net::SocketAddr,
    with_cert: bool,
) -> StreamOwned<ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.dir().join("ca.pem")).expect("ca.pem") {
        roots.add(cert.expect("a CA certificate")).expect("add the CA");
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = if with_cert {
        let chain = CertificateDer::pem_file_iter(certs.dir().join("client.pem"))
            .expect("client.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("client certificate");
        let key = PrivateKeyDer::from_pem_file(certs.dir().join("client.key")).expect("client.key");
        builder.with_client_auth_cert(chain, key).expect("client auth")
    } else {
        builder.with_no_client_auth()
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = ClientConnection::new(Arc::new(config), name).expect("client connection");
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    StreamOwned::new(conn, sock)
}

#[test]
fn tls_terminator_example_relays_to_a_plain_service() {
    let certs = Certs::new("terminator");
    let upstream = Moonport::new("plain_echo.lua").workers(1).start();
    let (cert, key, ca) = (certs.dir().join("server.pem"), certs.dir().join("server.key"), certs.dir().join("ca.pem"));
    let front = Moonport::new("../../../../examples/tls_terminator.lua")
        .workers(1)
        .arg(0)
        .arg(cert.display())
        .arg(key.display())
        .arg(upstream.addr())
        .arg(ca.display())
        .start();

    let mut tls = rustls_client(&certs, front.addr(), true);
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    tls.write_all(&payload).expect("send through TLS");
    let mut back = vec![0u8; payload.len()];
    tls.read_exact(&mut back).expect("the echo comes back decrypted and re-encrypted");
    assert!(back == payload, "bytes changed on the way");
    front.expect_log("client certificate of", IO_TIMEOUT);

    // Without a client certificate the terminator refuses, and carries on.
    let mut anonymous = rustls_client(&certs, front.addr(), false);
    let _ = anonymous.write_all(b"hello");
    let mut buf = [0u8; 16];
    assert!(matches!(anonymous.read(&mut buf), Err(_) | Ok(0)), "served without a client certificate");
    tls.write_all(b"still here").expect("send");
    let mut again = [0u8; 10];
    tls.read_exact(&mut again).expect("the first client carries on");
    assert_eq!(&again, b"still here");
}
