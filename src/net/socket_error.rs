//! Socket errors in luasocket's words.
//!
//! lua-websockets returned luasocket's error strings, and Lua programs compare against them
//! (`if err == 'timeout'`), so every error that comes from the network is reported with the
//! same wording luasocket uses for the same cause.

use std::io;

pub const TIMEOUT: &str = "timeout";
pub const CLOSED: &str = "closed";
/// A call the connection's state does not allow (lua-websockets' word for it).
pub const WRONG_STATE: &str = "wrong state";
pub const CONNECTION_REFUSED: &str = "connection refused";
pub const UNKNOWN_HOST: &str = "host or service not provided, or not known";

/// The luasocket wording for an I/O error.
pub fn describe_io(err: &io::Error) -> String {
    use io::ErrorKind::*;
    match err.kind() {
        ConnectionRefused => CONNECTION_REFUSED.to_string(),
        TimedOut | WouldBlock => TIMEOUT.to_string(),
        // luasocket reports resets, aborts and end of stream alike as 'closed'.
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
            CLOSED.to_string()
        }
        AddrInUse => "address already in use".to_string(),
        PermissionDenied => "permission denied".to_string(),
        _ => match err.raw_os_error() {
            // strerror's text, lower-cased like the rest of luasocket's messages.
            Some(code) => io::Error::from_raw_os_error(code)
                .to_string()
                .split(" (os error")
                .next()
                .unwrap_or_default()
                .to_lowercase(),
            None => err.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_luasocket_words() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_io(&refused), "connection refused");
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(describe_io(&reset), "closed");
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(describe_io(&eof), "closed");
        let timed_out = io::Error::from_raw_os_error(libc::ETIMEDOUT);
        assert_eq!(describe_io(&timed_out), "timeout");
    }

    #[test]
    fn other_os_errors_use_strerror_without_the_code() {
        let unreachable = io::Error::from_raw_os_error(libc::ENETUNREACH);
        assert_eq!(describe_io(&unreachable), "network is unreachable");
    }
}
