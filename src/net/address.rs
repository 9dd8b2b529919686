//! Parsing `ws://` and `wss://` addresses.

use url::{Host, Url};

/// Where a client connects, taken apart from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub secure: bool,
    /// Host name or IP literal, without brackets.
    pub host: String,
    pub port: u16,
    /// The URL as the handshake request sends it (scheme, authority, path and query).
    pub url: String,
}

/// Why an address was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AddressError {
    /// Not a `ws` or `wss` URL: lua-websockets answered `'bad protocol'`.
    BadScheme,
    /// A ws URL without a host, or one that does not parse.
    Invalid(String),
}

pub fn parse(text: &str) -> Result<Address, AddressError> {
    let url = Url::parse(text).map_err(|err| match err {
        // "localhost:8080" parses as scheme "localhost"; an address with no scheme at all
        // ("foo") is a relative URL: neither is a ws URL.
        url::ParseError::RelativeUrlWithoutBase => AddressError::BadScheme,
        other => AddressError::Invalid(format!("invalid URL '{text}': {other}")),
    })?;
    let secure = match url.scheme() {
        "ws" => false,
        "wss" => true,
        _ => return Err(AddressError::BadScheme),
    };
    let host = match url.host() {
        Some(Host::Domain(name)) => name.to_string(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(AddressError::Invalid(format!("no host in URL '{text}'"))),
    };
    let port = url
        .port_or_known_default()
        .unwrap_or(if secure { 443 } else { 80 });
    Ok(Address {
        secure,
        host,
        port,
        url: url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ports_by_scheme() {
        let plain = parse("ws://example.com/chat").unwrap();
        assert_eq!((plain.secure, plain.port), (false, 80));
        let secure = parse("wss://example.com").unwrap();
        assert_eq!((secure.secure, secure.port), (true, 443));
    }

    #[test]
    fn keeps_path_query_and_explicit_port() {
        let a = parse("ws://localhost:8080/a/b?x=1&y=2").unwrap();
        assert_eq!(a.host, "localhost");
        assert_eq!(a.port, 8080);
        assert_eq!(a.url, "ws://localhost:8080/a/b?x=1&y=2");
    }

    #[test]
    fn ipv6_literals_lose_their_brackets() {
        let a = parse("ws://[::1]:9000/").unwrap();
        assert_eq!(a.host, "::1");
        assert_eq!(a.port, 9000);
    }

    #[test]
    fn other_schemes_are_bad_protocol() {
        assert_eq!(parse("http://example.com"), Err(AddressError::BadScheme));
        assert_eq!(parse("localhost:8080"), Err(AddressError::BadScheme));
        assert_eq!(parse("example.com"), Err(AddressError::BadScheme));
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_without_panicking(text in ".*") {
            let _ = parse(&text);
        }

        #[test]
        fn ws_urls_keep_host_port_and_path(
            host in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9]{0,10}){0,3}",
            port in 1u16..,
            path in "(/[a-zA-Z0-9._~-]{0,12}){0,4}",
        ) {
            // A label starting "xn--" is punycode, and most such strings are not valid.
            proptest::prop_assume!(!host.starts_with("xn--"));
            let address = parse(&format!("ws://{host}:{port}{path}")).unwrap();
            proptest::prop_assert_eq!(&address.host, &host);
            proptest::prop_assert_eq!(address.port, port);
            proptest::prop_assert!(!address.secure);
        }
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(parse("ws://"), Err(AddressError::Invalid(_))));
        assert!(matches!(parse("ws://[::1/"), Err(AddressError::Invalid(_))));
    }
}
