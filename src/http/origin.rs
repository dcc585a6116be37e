//! The origin of a URL (scheme, host, port): the unit a key is bound to.
//! The API key is configured for one server; a URL handed back by that
//! server (an upload target, a status endpoint) gets the key only when it
//! is on the same origin.

use std::fmt;

/// `scheme://host:port`, lower-cased, the port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http` or `https` URL; `None` for anything
    /// else, and for a URL with user info (`https://good@evil/`), whose
    /// host a reader can mistake.
    pub(crate) fn of(url: &str) -> Option<Origin> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (format!("[{}]", addr.to_ascii_lowercase()), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (authority.to_ascii_lowercase(), None),
            }
        };
        let port = match port {
            None | Some("") => default_port,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
        };
        if host.is_empty() || host.contains(':') && !host.starts_with('[') {
            return None;
        }
        Some(Origin { scheme, host, port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let o = |u: &str| Origin::of(u).map(|o| o.to_string());
        assert_eq!(
            o("https://Acme.Centercode.com/api/v1").as_deref(),
            Some("https://acme.centercode.com:443")
        );
        assert_eq!(
            o("HTTP://127.0.0.1:8480/x?y").as_deref(),
            Some("http://127.0.0.1:8480")
        );
        assert_eq!(o("http://[::1]:9/x").as_deref(), Some("http://[::1]:9"));
        assert_eq!(o("http://[::1]/x").as_deref(), Some("http://[::1]:80"));
        assert_eq!(o("http://h:/x").as_deref(), Some("http://h:80"));
        assert_eq!(Origin::of("https://h/"), Origin::of("https://H:443/a/b"));
        assert_ne!(Origin::of("https://h/"), Origin::of("http://h/"));
        for bad in [
            "ftp://h/",
            "/relative",
            "https://",
            "https://u:p@h/",
            "https://good.example@evil.example/",
            "https://h:99999/",
            "https://h:8x/",
            "https://[::1/",
        ] {
            assert_eq!(Origin::of(bad), None, "{bad}");
        }
    }
}
