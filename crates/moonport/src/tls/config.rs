//! rustls configurations from script options: a server's certificate chain
//! and key (optionally verifying client certificates against a CA), and a
//! client's trust (Mozilla's roots, or a custom CA, or none at all).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// Whether a server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    None,
    /// Asked for; a client without one is let in, one with a bad one is not.
    Optional,
    Required,
}

/// What a TLS listener serves with. PEM values are file paths, or the PEM
/// text itself when they start with `-----BEGIN`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub cert: String,
    pub key: String,
    /// CA certificates client certificates must chain to.
    pub client_ca: Option<String>,
    pub client_auth: ClientAuth,
    pub alpn: Vec<Vec<u8>>,
}

/// How a TLS client trusts servers and identifies itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ClientSettings {
    /// CA certificates to trust instead of the built-in (Mozilla) roots.
    pub ca: Option<String>,
    /// `false` accepts any certificate: for tests against self-signed servers only.
    pub insecure: bool,
    /// A client certificate chain and key, for servers that ask for one.
    pub cert: Option<String>,
    pub key: Option<String>,
    pub alpn: Vec<Vec<u8>>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The PEM bytes behind an option: inline text, or a file's contents.
fn pem(what: &str, source: &str) -> Result<Vec<u8>, String> {
    if source.trim_start().starts_with("-----BEGIN") {
        return Ok(source.as_bytes().to_vec());
    }
    std::fs::read(source).map_err(|e| format!("cannot read {what} {source}: {e}"))
}

fn certs(what: &str, source: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = pem(what, source)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid {what} {}: {e}", shown(source)))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {what} {}", shown(source)));
    }
    Ok(certs)
}

fn key(source: &str) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = pem("key", source)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| format!("invalid key {}: {e}", shown(source)))
}

/// A source as errors show it: the path, not a page of inline PEM.
fn shown(source: &str) -> &str {
    if source.trim_start().starts_with("-----BEGIN") { "(inline PEM)" } else { source }
}

fn roots(what: &str, source: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in certs(what, source)? {
        store.add(cert).map_err(|e| format!("invalid {what} {}: {e}", shown(source)))?;
    }
    Ok(store)
}

/// Builds a listener's configuration; errors say which file is wrong.
pub fn server_config(s: &ServerSettings) -> Result<Arc<ServerConfig>, String> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (&s.client_ca, s.client_auth) {
        (_, ClientAuth::None) => builder.with_no_client_auth(),
        (None, _) => return Err("client certificates need client_ca".into()),
        (Some(ca), auth) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots("client_ca", ca)?), provider);
            let verifier = if auth == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    let mut config =
        builder.with_single_cert(certs("cert", &s.cert)?, key(&s.key)?).map_err(|e| format!("cert and key: {e}"))?;
    config.alpn_protocols = s.alpn.clone();
    Ok(Arc::new(config))
}

/// Client configurations already built on this worker, by settings: a
/// configuration parses its roots once, not at each connect.
const CLIENT_CACHE: usize = 32;

thread_local! {
    static CLIENTS: RefCell<HashMap<ClientSettings, Arc<ClientConfig>>> = RefCell::new(HashMap::new());
}

/// The client configuration for `s`, built once per worker.
pub fn client_config(s: &ClientSettings) -> Result<Arc<ClientConfig>, String> {
    if let Some(config) = CLIENTS.with_borrow(|c| c.get(s).cloned()) {
        return Ok(config);
    }
    let config = build_client(s)?;
    CLIENTS.with_borrow_mut(|c| {
        // A script making settings up on the fly must not grow this forever.
        if c.len() >= CLIENT_CACHE {
            c.clear();
        }
        c.insert(s.clone(), config.clone());
    });
    Ok(config)
}

fn build_client(s: &ClientSettings) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if s.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        let store = match &s.ca {
            Some(ca) => roots("ca", ca)?,
            None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        builder.with_root_certificates(store)
    };
    let mut config = match (&s.cert, &s.key) {
        (Some(cert), Some(k)) => {
            builder.with_client_auth_cert(certs("cert", cert)?, key(k)?).map_err(|e| format!("cert and key: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("a client certificate needs both cert and key".into()),
    };
    config.alpn_protocols = s.alpn.clone();
    Ok(Arc::new(config))
}

/// `verify = false`: any certificate is accepted, but the handshake's
/// signatures are still checked, so the session is encrypted to whoever
/// holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.0.signature_verification_algorithms
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}
