//! URLs split into the parts scripts use, and built back, by WHATWG rules
//! (the `url` crate does the parsing and normalization).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters gets escaped.
pub const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    pub scheme: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `user` and `password` are plain text: escaped when built, unescaped when parsed.
    /// IPv6 addresses without brackets.
    pub host: Option<String>,
    /// As written, or the scheme's default when parsed.
    pub port: Option<u16>,
    pub path: Option<String>,
    pub query: Option<String>,
    pub fragment: Option<String>,
}

/// Splits a URL; the error says why it is invalid.
pub fn parse(s: &str) -> Result<Parts, String> {
    let url = url::Url::parse(s).map_err(|e| e.to_string())?;
    Ok(Parts {
        scheme: Some(url.scheme().to_string()),
        user: Some(url.username()).filter(|u| !u.is_empty()).map(unescape),
        password: url.password().map(unescape),
        host: url.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()),
        port: url.port_or_known_default(),
        path: Some(url.path().to_string()),
        query: url.query().map(str::to_string),
        fragment: url.fragment().map(str::to_string),
    })
}

fn unescape(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Assembles parts into a URL and normalizes it (a scheme's default port is
/// dropped, the host lowercased, unsafe path characters escaped).
pub fn build(p: &Parts) -> Result<String, String> {
    let scheme = p.scheme.as_deref().ok_or("missing scheme")?;
    let mut s = format!("{scheme}:");
    if let Some(host) = &p.host {
        s.push_str("//");
        if let Some(user) = &p.user {
            s.extend(utf8_percent_encode(user, ESCAPE));
            if let Some(password) = &p.password {
                s.push(':');
                s.extend(utf8_percent_encode(password, ESCAPE));
            }
            s.push('@');
        }
        if host.contains(':') && !host.starts_with('[') {
            s.push_str(&format!("[{host}]"));
        } else {
            s.push_str(host);
        }
        if let Some(port) = p.port {
            s.push_str(&format!(":{port}"));
        }
    }
    if let Some(path) = &p.path {
        if p.host.is_some() && !path.is_empty() && !path.starts_with('/') {
            s.push('/');
        }
        // Without a host, a path starting "//" would read back as one: the
        // URL Standard's "/." prefix keeps it a path.
        if p.host.is_none() && path.starts_with("//") {
            s.push_str("/.");
        }
        s.push_str(path);
    }
    if let Some(query) = &p.query {
        s.push('?');
        s.push_str(query);
    }
    if let Some(fragment) = &p.fragment {
        s.push('#');
        s.push_str(fragment);
    }
    url::Url::parse(&s).map(String::from).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts() -> impl Strategy<Value = Parts> {
        let word = "[a-z0-9]{1,8}";
        (
            prop_oneof![Just("http"), Just("https"), Just("ws"), Just("wss"), Just("vnc")],
            proptest::option::of(word),
            proptest::option::of("[a-zA-Z0-9 @:%]{0,8}"),
            prop_oneof![
                "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5})?".prop_map(|h| h),
                Just("127.0.0.1".to_string()),
                Just("::1".to_string())
            ],
            proptest::option::of(1u16..),
            proptest::option::of("(/[a-zA-Z0-9 ._~%-]{0,6}){0,3}"),
            proptest::option::of("[a-z0-9=&]{0,12}"),
            proptest::option::of("[a-z0-9]{0,6}"),
        )
            .prop_map(|(scheme, user, password, host, port, path, query, fragment)| Parts {
                scheme: Some(scheme.to_string()),
                password: password.filter(|_| user.is_some()),
                user,
                host: Some(host),
                port,
                path,
                query,
                fragment,
            })
    }

    proptest! {
        /// Building what was parsed gives back the same URL, and parsing a
        /// built URL gives back the host, port and query put in.
        #[test]
        fn build_and_parse_round_trip(p in parts()) {
            let built = build(&p).map_err(|e| TestCaseError::fail(format!("{p:?}: {e}")))?;
            let parsed = parse(&built).map_err(|e| TestCaseError::fail(format!("{built}: {e}")))?;
            prop_assert_eq!(build(&parsed), Ok(built.clone()));
            prop_assert_eq!(&parsed.host, &p.host);
            prop_assert_eq!(&parsed.query, &p.query);
            prop_assert_eq!(&parsed.fragment, &p.fragment);
            if p.port.is_some() {
                prop_assert_eq!(parsed.port, p.port);
            }
        }
    }

    #[test]
    fn known_cases() {
        let p = parse("HTTPS://u:p@Example.com:443/a?b#c").unwrap();
        assert_eq!(p.host.as_deref(), Some("example.com"));
        assert_eq!(p.port, Some(443));
        assert_eq!(build(&p).unwrap(), "https://u:p@example.com/a?b#c");
        assert_eq!(parse("nope").unwrap_err(), "relative URL without a base");
        // Found by fuzzing: a hostless "//" path must not turn into a host.
        for s in ["a:/.//f", "a:////"] {
            let once = build(&parse(s).unwrap()).unwrap();
            assert_eq!(parse(&once).unwrap().host, None, "{s} -> {once}");
            assert_eq!(build(&parse(&once).unwrap()).unwrap(), once);
        }
    }
}
