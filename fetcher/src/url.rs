//! `https://` URLs as the fetcher accepts them: a host (DNS name or IP address), an optional
//! port, a path and query of printable ASCII. No user information, no fragment, nothing else.

use std::fmt;

use tessera_core::egress::Destination;

/// A checked `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    dest: Destination,
    /// Path and query, starting with `/`.
    target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL {url:?}: {reason}")]
pub struct UrlError {
    pub url: String,
    pub reason: &'static str,
}

impl HttpsUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let err = |reason| UrlError {
            url: url.chars().take(200).collect(),
            reason,
        };
        if url.len() > 2048 {
            return Err(err("longer than 2048 bytes"));
        }
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| err("only https:// URLs are fetched"))?;
        if !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("spaces, control or non-ASCII characters"));
        }
        if rest.contains('#') {
            return Err(err("a fragment is not part of a request"));
        }
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(err("user information in a URL is refused"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| err("unclosed [ in host"))?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| err("invalid IPv6 address"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 443,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u16>().map_err(|_| err("port out of range"))?
            }
            Some(_) => return Err(err("invalid port")),
        };
        let dest = Destination::new(host, port).map_err(|_| err("invalid host"))?;
        Ok(Self { dest, target })
    }

    /// Where the connection goes.
    #[must_use]
    pub fn destination(&self) -> &Destination {
        &self.dest
    }

    #[must_use]
    pub fn host(&self) -> &str {
        self.dest.host()
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.dest.port()
    }

    /// The request target: path and query.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The value of the Host header: the host, and the port unless it is 443.
    #[must_use]
    pub fn host_header(&self) -> String {
        let host = match self.dest.ip() {
            Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.dest.host().to_owned(),
        };
        if self.port() == 443 {
            host
        } else {
            format!("{host}:{}", self.port())
        }
    }
}

impl fmt::Display for HttpsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}{}", self.host_header(), self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_destination_and_target() {
        let u = HttpsUrl::parse("https://Example.com/a/b?c=d").unwrap();
        assert_eq!(u.destination().to_string(), "example.com:443");
        assert_eq!(u.target(), "/a/b?c=d");
        assert_eq!(u.to_string(), "https://example.com/a/b?c=d");
        let u = HttpsUrl::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!(u.target(), "/");
        assert_eq!(u.host_header(), "127.0.0.1:8443");
        let u = HttpsUrl::parse("https://[::1]:9/x").unwrap();
        assert_eq!(u.host_header(), "[::1]:9");
        assert_eq!(
            HttpsUrl::parse("https://a.com?x=1").unwrap().target(),
            "/?x=1"
        );
        for bad in [
            "http://example.com/",
            "https://user@example.com/",
            "https://example.com:/",
            "https://example.com:99999/",
            "https://example.com/a b",
            "https://example.com/#frag",
            "https://exa_mple.com/",
            "https://[::1/",
            "https:///x",
            "https://example.com\r\nX: y/",
        ] {
            assert!(HttpsUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
