//! The `tls` option that `moonport.tcp.listen` / `connect`, `moonport.http`,
//! `moonport.ws` and `conn:starttls` share: Lua tables turned into
//! `crate::tls` settings, and `conn:tls_info()`'s table.
//!
//! A listener's table: `cert`, `key` (files, or PEM text), `client_ca`,
//! `verify_client` (`"none"`, `"optional"`, `"required"`), `alpn` (a list),
//! `handshake_timeout` (seconds). A client's: `true` for the defaults, or
//! `ca`, `verify` (default true), `server_name`, `cert`, `key`, `alpn`.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, Table, Value};
use rustls::ServerConfig;

use super::args::{self, Arg};
use crate::net::NetError;
use crate::tls::{ClientAuth, ClientSettings, ServerSettings, TlsInfo, TlsSession};

/// How long an accepted connection has to finish its handshake by default.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS listener's configuration, built once per worker.
pub(super) struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub handshake_timeout: Option<Duration>,
}

/// A client's `tls` option; the default verifies against the built-in roots.
#[derive(Clone, Default)]
pub(super) struct ClientTls {
    settings: ClientSettings,
    server_name: Option<String>,
}

impl ClientTls {
    /// A session that checks the certificate against `server_name` if the
    /// script gave one, else against `host` (the name or address connected to).
    pub fn session(&self, host: &str) -> Result<TlsSession, String> {
        let name = self.server_name.as_deref().unwrap_or(host);
        crate::tls::client_session(&self.settings, name.trim_start_matches('[').trim_end_matches(']'))
    }
}

fn text(lua: &Lua, t: &Table, key: &str, arg: Arg) -> mlua::Result<Option<String>> {
    Ok(args::opt_bytes(lua, t.get(key)?, arg.key(key))?.map(|s| s.to_string_lossy()))
}

fn alpn(lua: &Lua, t: &Table, arg: Arg) -> mlua::Result<Vec<Vec<u8>>> {
    let Some(list) = args::opt_table(lua, t.get("alpn")?, arg.key("alpn"))? else { return Ok(Vec::new()) };
    list.sequence_values::<Value>().map(|v| Ok(args::bytes(lua, v?, arg.key("alpn"))?.as_bytes().to_vec())).collect()
}

/// A listener's `tls` option: `None` for a plain listener. A certificate
/// that cannot be loaded is `Ok(Some(Err(why)))`, which `listen` reports as
/// `nil, err` like an address it cannot bind; a wrong type is a Lua error.
pub(super) fn server_option(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Option<Result<ServerTls, String>>> {
    let Some(t) = args::opt_table(lua, v, arg)? else { return Ok(None) };
    let need = |key: &str| -> mlua::Result<String> {
        text(lua, &t, key, arg)?.ok_or_else(|| arg.key(key).error(lua, "a PEM file or text expected, got nil"))
    };
    let (cert, key) = (need("cert")?, need("key")?);
    let client_ca = text(lua, &t, "client_ca", arg)?;
    let verify = text(lua, &t, "verify_client", arg)?;
    let client_auth = match verify.as_deref() {
        None if client_ca.is_some() => ClientAuth::Required,
        None | Some("none") => ClientAuth::None,
        Some("optional") => ClientAuth::Optional,
        Some("required") => ClientAuth::Required,
        Some(other) => {
            return Err(arg
                .key("verify_client")
                .error(lua, format!("\"none\", \"optional\" or \"required\" expected, got \"{other}\"")));
        }
    };
    let handshake_timeout = args::timeout(lua, t.get("handshake_timeout")?, arg.key("handshake_timeout"))?
        .unwrap_or(Some(DEFAULT_HANDSHAKE_TIMEOUT));
    let settings = ServerSettings { cert, key, client_ca, client_auth, alpn: alpn(lua, &t, arg)? };
    Ok(Some(crate::tls::server_config(&settings).map(|config| ServerTls { config, handshake_timeout })))
}

/// A client's `tls` option: nil or `false` for none, `true` for the
/// defaults (verify against the built-in roots), or a table.
pub(super) fn client_option(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Option<ClientTls>> {
    let t = match v {
        Value::Nil | Value::Boolean(false) => return Ok(None),
        Value::Boolean(true) => return Ok(Some(ClientTls::default())),
        v => match args::opt_table(lua, v, arg)? {
            Some(t) => t,
            None => return Ok(None),
        },
    };
    let verify = args::boolean(lua, t.get("verify")?, arg.key("verify"), Some(true))?.unwrap_or(true);
    let (cert, key) = (text(lua, &t, "cert", arg)?, text(lua, &t, "key", arg)?);
    if cert.is_some() != key.is_some() {
        let missing = if cert.is_some() { "key" } else { "cert" };
        return Err(arg.key(missing).error(lua, "a client certificate needs both cert and key"));
    }
    let settings =
        ClientSettings { ca: text(lua, &t, "ca", arg)?, insecure: !verify, cert, key, alpn: alpn(lua, &t, arg)? };
    Ok(Some(ClientTls { settings, server_name: text(lua, &t, "server_name", arg)? }))
}

/// The session for a `https://` or `wss://` URL's connection to `host`:
/// the `tls` option's settings, or the defaults. `None` for a plain URL;
/// `Err` (the `nil, err` message) when the settings cannot be loaded.
pub(super) fn url_session(
    lua: &Lua,
    v: Value,
    arg: Arg,
    secure: bool,
    host: &str,
) -> mlua::Result<Result<Option<TlsSession>, String>> {
    let tls = client_option(lua, v, arg)?;
    if !secure {
        return Ok(Ok(None));
    }
    Ok(tls.unwrap_or_default().session(host).map(Some).map_err(|why| NetError::Tls(why).to_string()))
}

/// `conn:tls_info()`'s table.
pub(super) fn info_table(lua: &Lua, info: TlsInfo) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("version", info.version)?;
    t.set("cipher", info.cipher)?;
    if let Some(alpn) = info.alpn {
        t.set("alpn", lua.create_string(alpn)?)?;
    }
    t.set("server_name", info.server_name)?;
    if let Some(cert) = info.peer_certificate {
        t.set("peer_certificate", lua.create_string(cert)?)?;
    }
    Ok(t)
}
