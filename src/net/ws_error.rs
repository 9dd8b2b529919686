//! What a tungstenite error means to a Lua caller: a message, and for a connection that has
//! to be failed, the close code RFC 6455 gives for it.

use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::Error;

use crate::net::socket_error::{describe_io, CLOSED};

/// The close code a failed connection is closed with, per RFC 6455 section 7.4.1.
pub fn close_code(err: &Error) -> u16 {
    match err {
        Error::Utf8(_) => 1007,
        Error::Capacity(_) => 1009,
        Error::Protocol(_) => 1002,
        _ => 1006,
    }
}

/// Whether the error says the peer went away rather than misbehaved.
pub fn is_disconnect(err: &Error) -> bool {
    matches!(
        err,
        Error::ConnectionClosed
            | Error::AlreadyClosed
            | Error::Io(_)
            | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)
            | Error::Protocol(ProtocolError::HandshakeIncomplete)
    )
}

/// A message for an error met while the connection was open.
pub fn describe(err: &Error) -> String {
    match err {
        Error::ConnectionClosed | Error::AlreadyClosed => CLOSED.to_string(),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => CLOSED.to_string(),
        Error::Io(io) => describe_io_or_tls(io),
        Error::Utf8(_) => "invalid UTF-8 in text message".to_string(),
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            format!("message too big: {size} bytes, the limit is {max_size}")
        }
        Error::Capacity(other) => format!("message too big: {other}"),
        Error::Protocol(protocol) => format!("protocol error: {protocol}"),
        other => other.to_string(),
    }
}

/// A message for an error met while connecting.
pub fn describe_handshake(err: &Error) -> String {
    match err {
        Error::Http(response) => format!(
            "Websocket Handshake failed: HTTP status {} {}",
            response.status().as_u16(),
            response.status().canonical_reason().unwrap_or_default()
        ),
        Error::Protocol(ProtocolError::HandshakeIncomplete) => CLOSED.to_string(),
        Error::Protocol(protocol) => format!("Websocket Handshake failed: {protocol}"),
        Error::Tls(tls) => format!("TLS handshake failed: {tls}"),
        other => describe(other),
    }
}

/// An I/O error that may carry a TLS failure.
pub fn describe_io_or_tls(err: &std::io::Error) -> String {
    describe_tls(err).unwrap_or_else(|| describe_io(err))
}

/// rustls reports certificate and handshake failures inside an I/O error.
fn describe_tls(err: &std::io::Error) -> Option<String> {
    let inner = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(format!("TLS handshake failed: {inner}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn disconnects_read_as_closed() {
        let reset = Error::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert!(is_disconnect(&reset));
        assert_eq!(describe(&reset), "closed");
        assert_eq!(close_code(&reset), 1002);
        let eof = Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(describe(&eof), "closed");
    }

    #[test]
    fn failures_carry_rfc_close_codes() {
        let too_big = Error::Capacity(CapacityError::MessageTooLong {
            size: 10,
            max_size: 5,
        });
        assert_eq!(close_code(&too_big), 1009);
        assert!(describe(&too_big).contains("limit is 5"));
        let unmasked = Error::Protocol(ProtocolError::UnmaskedFrameFromClient);
        assert_eq!(close_code(&unmasked), 1002);
        assert!(!is_disconnect(&unmasked));
    }

    #[test]
    fn rustls_errors_are_named_as_tls() {
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = io::Error::new(io::ErrorKind::InvalidData, cert);
        assert!(describe(&Error::Io(io)).starts_with("TLS handshake failed"));
    }
}
