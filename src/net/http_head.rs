//! HTTP heads around the WebSocket handshake that tungstenite does not expose: the server's
//! reading of a request before the upgrade (for `on_request` and `ws.request`), the plain
//! HTTP responses that `on_request` answers with, and the client's tolerance of a response
//! that names no subprotocol. The upgrade itself stays tungstenite's.

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};

/// The largest head read (tungstenite's own bound on a handshake request).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers a request may have (tungstenite's bound).
const MAX_HEADERS: usize = 124;

/// Where the head ends (just past its blank line), if it is complete.
pub fn end_of_head(bytes: &[u8]) -> Option<usize> {
    match HeadEnd::default().scan(bytes) {
        (taken, true) => Some(taken),
        (_, false) => None,
    }
}

/// Finds a head's blank line across any chunking: an empty line ended by CRLF or by a bare
/// LF, as httparse (and so tungstenite) accepts them.
#[derive(Default, Clone, Copy)]
pub struct HeadEnd {
    /// 0: inside a line; 1: a line just ended; 2: and a CR followed.
    seen: u8,
}

impl HeadEnd {
    /// Scans `bytes`, the next ones: how many belong to the head, and whether it ended.
    pub fn scan(&mut self, bytes: &[u8]) -> (usize, bool) {
        for (index, &byte) in bytes.iter().enumerate() {
            self.seen = match (byte, self.seen) {
                (b'\n', 1 | 2) => return (index + 1, true),
                (b'\n', _) => 1,
                (b'\r', 1) => 2,
                _ => 0,
            };
        }
        (bytes.len(), false)
    }
}

/// A response head with `Sec-WebSocket-Protocol: protocol` added, when it is a 101 that names
/// no protocol; None otherwise (the head is then used as it is).
pub fn fill_in_subprotocol(head: &[u8], protocol: &str) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) if response.code == Some(101) => {}
        _ => return None,
    }
    let named = response
        .headers
        .iter()
        .any(|header| header.name.eq_ignore_ascii_case("sec-websocket-protocol"));
    if named {
        return None;
    }
    let mut patched = head[..head.len() - 2].to_vec();
    patched.extend_from_slice(format!("Sec-WebSocket-Protocol: {protocol}\r\n\r\n").as_bytes());
    Some(patched)
}

/// The value of header `name` in a 101 response head (repeated ones joined by ", "); None
/// for another status, or when the header is absent.
pub fn response_header(head: &[u8], name: &str) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) if response.code == Some(101) => {}
        _ => return None,
    }
    let values: Vec<String> = response
        .headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case(name))
        .map(|header| String::from_utf8_lossy(header.value).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// A request head as Lua sees it (`request.method`, `.path`, `.headers`, `.protocols`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    /// Names lower-cased, repeated headers joined by ", ", in the order first sent.
    pub headers: Vec<(String, String)>,
    /// The protocols offered in Sec-WebSocket-Protocol, in order.
    pub protocols: Vec<String>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }

    /// Why this request cannot be upgraded to a WebSocket (RFC 6455 4.2.1), if it cannot.
    pub fn upgrade_problem(&self) -> Option<&'static str> {
        let has_token = |name: &str, token: &str| {
            self.header(name).is_some_and(|value| {
                value
                    .split(',')
                    .any(|item| item.trim().eq_ignore_ascii_case(token))
            })
        };
        if self.method != "GET" {
            Some("not a GET request")
        } else if !has_token("upgrade", "websocket") {
            Some("not a WebSocket upgrade (no 'Upgrade: websocket')")
        } else if !has_token("connection", "upgrade") {
            Some("no 'Connection: Upgrade'")
        } else if self.header("sec-websocket-version") != Some("13") {
            Some("Sec-WebSocket-Version is not 13")
        } else if self.header("sec-websocket-key").is_none() {
            Some("no Sec-WebSocket-Key")
        } else if self
            .header("sec-websocket-key")
            .is_some_and(|key| key.contains(','))
        {
            // Repeated headers are joined by ", "; a key (base64) never holds a comma.
            Some("duplicate Sec-WebSocket-Key")
        } else {
            None
        }
    }

    /// Why this request is refused before anything else looks at it: it announces a body
    /// (an upgrade has none, and a server that does not read one would take it for the next
    /// request: the shape of request smuggling).
    pub fn body_problem(&self) -> Option<&'static str> {
        let length = self.header("content-length");
        let chunked = self.header("transfer-encoding").is_some();
        match (length, chunked) {
            (Some(_), true) => Some("Content-Length with Transfer-Encoding"),
            (None, true) => Some("a request body (Transfer-Encoding)"),
            (Some(length), false) if length != "0" => Some("a request body (Content-Length)"),
            _ => None,
        }
    }
}

/// Why a request head could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    Malformed(String),
    TooLarge,
}

/// Parses a complete request head (`bytes` up to and including its blank line).
pub fn parse_request(bytes: &[u8]) -> Result<RequestHead, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete".into())),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(err) => return Err(HeadError::Malformed(err.to_string())),
    }
    if request.version != Some(1) {
        return Err(HeadError::Malformed("not HTTP/1.1".into()));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for header in request.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(header.value).trim().to_string();
        match headers.iter_mut().find(|(known, _)| *known == name) {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    let protocols = headers
        .iter()
        .find(|(name, _)| name == "sec-websocket-protocol")
        .map(|(_, value)| {
            value
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(RequestHead {
        method: request.method.unwrap_or_default().to_string(),
        path: request.path.unwrap_or_default().to_string(),
        headers,
        protocols,
    })
}

/// A header name and value that may go into an HTTP head as given, or why not.
pub fn checked_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name '{}'", name.escape_debug()))?;
    let header_value = HeaderValue::from_str(value)
        .map_err(|_| format!("invalid value for header '{}'", name.escape_debug()))?;
    Ok((header_name, header_value))
}

/// A complete HTTP/1.1 response that ends the connection: `status`, `headers` (already
/// checked), `Content-Length` and `Connection: close`, then `body`.
pub fn response(status: u16, headers: &[(HeaderName, HeaderValue)], body: &[u8]) -> Vec<u8> {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
    for (name, value) in headers {
        if name == "content-length" || name == "connection" {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    head.extend_from_slice(body);
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, echo\r\nX-Tag: a\r\nx-tag: b\r\n\r\n";

    #[test]
    fn a_request_head_reads_as_lua_sees_it() {
        let end = end_of_head(UPGRADE).unwrap();
        assert_eq!(end, UPGRADE.len());
        let head = parse_request(&UPGRADE[..end]).unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/chat?room=1");
        assert_eq!(head.header("x-tag"), Some("a, b"));
        assert_eq!(head.protocols, vec!["chat", "echo"]);
        assert_eq!(head.upgrade_problem(), None);
    }

    #[test]
    fn a_plain_get_is_no_upgrade() {
        let head = parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(head.upgrade_problem().is_some());
        assert!(head.protocols.is_empty());
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            parse_request(b"\x16\x03\x01 hello\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn a_missing_subprotocol_is_filled_in_only_on_a_101() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let patched = fill_in_subprotocol(head, "echo").unwrap();
        assert!(patched.ends_with(b"Sec-WebSocket-Protocol: echo\r\n\r\n"));
        let named = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        assert_eq!(fill_in_subprotocol(named, "echo"), None);
        assert_eq!(
            fill_in_subprotocol(b"HTTP/1.1 404 No\r\n\r\n", "echo"),
            None
        );
    }

    #[test]
    fn responses_carry_length_and_close() {
        let headers = vec![checked_header("WWW-Authenticate", "Bearer").unwrap()];
        let bytes = response(401, &headers, b"no");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(text.contains("www-authenticate: Bearer\r\n"));
        assert!(text.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\nno"));
    }

    #[test]
    fn header_injection_is_refused() {
        assert!(checked_header("X-A", "1\r\nEvil: 2").is_err());
        assert!(checked_header("X A", "1").is_err());
        assert!(checked_header("X-A", "fine").is_ok());
    }

    #[test]
    fn a_head_ends_at_an_empty_line_with_crlf_or_bare_lf() {
        assert_eq!(end_of_head(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(end_of_head(b"GET / HTTP/1.1\nA: b\n\nrest"), Some(21));
        assert_eq!(end_of_head(b"GET / HTTP/1.1\nA: b\n\r\n"), Some(22));
        assert_eq!(end_of_head(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        // Across chunks, cut anywhere.
        let head = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        for cut in 0..head.len() {
            let mut end = HeadEnd::default();
            let (first, found) = end.scan(&head[..cut]);
            assert!(!found && first == cut);
            assert_eq!(end.scan(&head[cut..]), (head.len() - cut, true));
        }
    }

    #[test]
    fn a_bare_lf_upgrade_parses() {
        let bare: Vec<u8> = String::from_utf8_lossy(UPGRADE)
            .replace("\r\n", "\n")
            .into_bytes();
        let head = parse_request(&bare).expect("parsed");
        assert_eq!(head.upgrade_problem(), None);
    }

    #[test]
    fn bodies_and_repeated_keys_are_refused() {
        let with = |extra: &str| {
            let text = String::from_utf8_lossy(UPGRADE).replace("X-Tag: a", extra);
            parse_request(text.as_bytes()).expect("parsed")
        };
        assert_eq!(with("X-Tag: a").body_problem(), None);
        assert_eq!(with("Content-Length: 0").body_problem(), None);
        assert_eq!(
            with("Content-Length: 5").body_problem(),
            Some("a request body (Content-Length)")
        );
        assert_eq!(
            with("Transfer-Encoding: chunked").body_problem(),
            Some("a request body (Transfer-Encoding)")
        );
        assert_eq!(
            with("Content-Length: 0\r\nTransfer-Encoding: chunked").body_problem(),
            Some("Content-Length with Transfer-Encoding")
        );
        assert_eq!(
            with("Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==").upgrade_problem(),
            Some("duplicate Sec-WebSocket-Key")
        );
    }
}
