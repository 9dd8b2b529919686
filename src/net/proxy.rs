//! Reaching a server through an HTTP proxy: which proxy a connect goes through (the
//! client's `proxy` option, else the environment as curl reads it), and the `CONNECT`
//! tunnel through it. TLS to the server and the opening handshake then run inside the
//! tunnel as they would on a direct connection.

use data_encoding::BASE64;
use percent_encoding::percent_decode_str;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::{Host, Url};

/// The port of a proxy URL that names none (curl's default).
const DEFAULT_PROXY_PORT: u16 = 1080;

/// The longest proxy answer head read.
const MAX_ANSWER: usize = 16 * 1024;

/// An HTTP proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// The `Proxy-Authorization` value for the URL's user and password.
    authorization: Option<String>,
}

/// How a client picks its proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxyChoice {
    /// As curl does: `https_proxy` for wss://, `http_proxy` for ws://, then `all_proxy`
    /// (lower case first, then upper case), unless `no_proxy` names the host.
    #[default]
    FromEnvironment,
    /// `opts.proxy = false`.
    Direct,
    /// `opts.proxy = 'http://…'`.
    Through(Proxy),
}

impl Proxy {
    /// Reads `http://[user:pass@]host[:port]` (the scheme may be left out).
    pub fn parse(text: &str) -> Result<Proxy, String> {
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let url =
            Url::parse(&with_scheme).map_err(|err| format!("invalid proxy URL '{text}': {err}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "unsupported proxy scheme '{}' (http:// expected)",
                url.scheme()
            ));
        }
        let host = match url.host() {
            Some(Host::Domain(name)) => name.to_string(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(format!("no host in proxy URL '{text}'")),
        };
        let authorization = match url.username() {
            "" => None,
            user => {
                let decode = |part: &str| percent_decode_str(part).decode_utf8_lossy().into_owned();
                let password = decode(url.password().unwrap_or(""));
                let credentials = format!("{}:{password}", decode(user));
                Some(format!("Basic {}", BASE64.encode(credentials.as_bytes())))
            }
        };
        Ok(Proxy {
            host,
            port: url.port().unwrap_or(DEFAULT_PROXY_PORT),
            authorization,
        })
    }

    /// `host:port`, as messages name the proxy.
    pub fn name(&self) -> String {
        authority(&self.host, self.port)
    }
}

/// `host:port`, with an IPv6 literal in brackets.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl ProxyChoice {
    /// The proxy a connect to `host` (over TLS when `secure`) goes through, if any.
    pub fn resolve(&self, host: &str, secure: bool) -> Result<Option<Proxy>, String> {
        match self {
            ProxyChoice::Direct => Ok(None),
            ProxyChoice::Through(proxy) => Ok(Some(proxy.clone())),
            ProxyChoice::FromEnvironment => {
                from_environment(host, secure, |name| std::env::var(name).ok())
            }
        }
    }
}

/// The environment's proxy for `host`, reading variables with `read`.
fn from_environment(
    host: &str,
    secure: bool,
    read: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, String> {
    let either_case = |name: &str| {
        read(name)
            .or_else(|| read(&name.to_uppercase()))
            .filter(|value| !value.trim().is_empty())
    };
    let scheme_variable = if secure { "https_proxy" } else { "http_proxy" };
    let Some((variable, value)) = [scheme_variable, "all_proxy"]
        .into_iter()
        .find_map(|name| either_case(name).map(|value| (name, value)))
    else {
        return Ok(None);
    };
    if either_case("no_proxy").is_some_and(|list| bypasses(&list, host)) {
        return Ok(None);
    }
    Proxy::parse(value.trim())
        .map(Some)
        .map_err(|problem| format!("{problem} (from {variable})"))
}

/// Whether `no_proxy`'s `list` names `host`: `*`, the host itself, or a domain it is in
/// (`example.com` and `.example.com` both cover `www.example.com`); ports are ignored.
fn bypasses(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches('[');
        let entry = match entry.rsplit_once(']') {
            Some((address, _port)) => address,
            None => match entry.rsplit_once(':') {
                // A host with a port; an IPv6 literal without brackets has several colons.
                Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => name,
                _ => entry,
            },
        };
        let entry = entry.trim_start_matches('.').to_ascii_lowercase();
        !entry.is_empty()
            && (host == entry
                || host
                    .strip_suffix(&entry)
                    .is_some_and(|rest| rest.ends_with('.')))
    })
}

/// Asks `proxy` (connected as `stream`) for a tunnel to `host:port`. Fails with the words
/// of the connect's error: `proxy refused: <status> <reason>` for an answer other than 2xx.
pub async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), String> {
    let target = authority(host, port);
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(credentials) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {credentials}\r\n"));
    }
    request.push_str("\r\n");
    let failed = |err: std::io::Error| {
        format!(
            "proxy {}: {}",
            proxy.name(),
            crate::net::socket_error::describe_io(&err)
        )
    };
    stream.write_all(request.as_bytes()).await.map_err(failed)?;
    // Byte by byte up to the end of the head: what follows it is the server's.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_ANSWER {
            return Err(format!("proxy {}: answer too long", proxy.name()));
        }
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await.map_err(failed)? {
            0 => return Err(format!("proxy {}: closed before answering", proxy.name())),
            _ => head.push(byte[0]),
        }
    }
    let status_line = String::from_utf8_lossy(&head);
    let status_line = status_line.lines().next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (version, status, reason) = (parts.next(), parts.next(), parts.next());
    match (version, status.and_then(|code| code.parse::<u16>().ok())) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => {
            if (200..300).contains(&code) {
                Ok(())
            } else {
                Err(format!(
                    "proxy refused: {code} {}",
                    reason.unwrap_or("").trim()
                ))
            }
        }
        _ => Err(format!(
            "proxy {}: not an HTTP answer: {}",
            proxy.name(),
            status_line.escape_debug()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_url_gives_its_host_port_and_basic_credentials() {
        let proxy = Proxy::parse("http://us%40er:p%3Ass@proxy.example:3128").unwrap();
        assert_eq!(proxy.host, "proxy.example");
        assert_eq!(proxy.port, 3128);
        // "us@er:p:ss" in base64.
        assert_eq!(
            proxy.authorization.as_deref(),
            Some("Basic dXNAZXI6cDpzcw==")
        );
        let bare = Proxy::parse("10.0.0.1").unwrap();
        assert_eq!(
            (bare.host.as_str(), bare.port, bare.authorization),
            ("10.0.0.1", 1080, None)
        );
        assert!(Proxy::parse("socks5://proxy:1080")
            .unwrap_err()
            .contains("socks5"));
        assert!(Proxy::parse("http://").is_err());
    }

    #[test]
    fn the_environment_is_read_as_curl_reads_it() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(known, _)| *known == name)
                    .map(|(_, value)| value.to_string())
            }
        };
        let host =
            |choice: Result<Option<Proxy>, String>| choice.unwrap().map(|proxy| proxy.name());
        let both = env(&[("http_proxy", "plain:1"), ("HTTPS_PROXY", "secure:2")]);
        assert_eq!(
            host(from_environment("a.example", false, both)),
            Some("plain:1".into())
        );
        assert_eq!(
            host(from_environment("a.example", true, both)),
            Some("secure:2".into())
        );
        let all = env(&[
            ("ALL_PROXY", "every:3"),
            ("no_proxy", "localhost, .inner.example,10.1.1.1:80"),
        ]);
        assert_eq!(
            host(from_environment("a.example", true, all)),
            Some("every:3".into())
        );
        assert_eq!(host(from_environment("localhost", false, all)), None);
        assert_eq!(host(from_environment("db.inner.example", false, all)), None);
        assert_eq!(host(from_environment("inner.example", false, all)), None);
        assert_eq!(
            host(from_environment("notinner.example", false, all)),
            Some("every:3".into())
        );
        assert_eq!(host(from_environment("10.1.1.1", false, all)), None);
        let star = env(&[("http_proxy", "plain:1"), ("no_proxy", "*")]);
        assert_eq!(host(from_environment("a.example", false, star)), None);
        assert_eq!(host(from_environment("a.example", false, env(&[]))), None);
        let broken = env(&[("https_proxy", "ftp://x:1")]);
        assert!(from_environment("a.example", true, broken)
            .unwrap_err()
            .ends_with("(from https_proxy)"));
    }

    #[tokio::test]
    async fn the_tunnel_reads_only_the_proxy_answer_and_words_a_refusal() {
        let proxy = Proxy::parse("http://u:p@proxy:8").unwrap();
        let (mut ours, mut theirs) = tokio::io::duplex(4096);
        let answering = tokio::spawn(async move {
            let mut request = vec![0u8; 1024];
            let n = theirs.read(&mut request).await.unwrap();
            theirs
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\nserver bytes")
                .await
                .unwrap();
            String::from_utf8(request[..n].to_vec()).unwrap()
        });
        tunnel(&mut ours, &proxy, "::1", 443).await.unwrap();
        let request = answering.await.unwrap();
        assert!(request.starts_with("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n"));
        assert!(request.contains("Proxy-Authorization: Basic dTpw\r\n"));
        let mut rest = [0u8; 12];
        ours.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"server bytes");

        let (mut ours, mut theirs) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut request = vec![0u8; 1024];
            let _ = theirs.read(&mut request).await;
            let _ = theirs
                .write_all(b"HTTP/1.0 407 Proxy Authentication Required\r\nX: y\r\n\r\n")
                .await;
        });
        let refusal = tunnel(&mut ours, &proxy, "a.example", 80)
            .await
            .unwrap_err();
        assert_eq!(refusal, "proxy refused: 407 Proxy Authentication Required");
    }
}
