//! The values of lua-websockets' API that the mlua methods and the C functions of the hot
//! path both use, written once: the opcodes, the PENDING marker, which opcodes a send
//! takes, and the words of the errors both raise.

use std::ffi::CStr;

use mlua::LightUserData;

pub(crate) const TEXT: i64 = 1;
pub(crate) const BINARY: i64 = 2;
pub(crate) const PING: i64 = 9;
pub(crate) const PONG: i64 = 10;

/// The opcode a received data message is reported with.
pub(crate) fn opcode_of(is_text: bool) -> i64 {
    if is_text {
        TEXT
    } else {
        BINARY
    }
}

/// The value a call of the copas flavours returns first when it would have to wait.
pub(crate) fn pending() -> LightUserData {
    static MARKER: u8 = 0;
    LightUserData(&MARKER as *const u8 as *mut std::ffi::c_void)
}

/// What `send(message, opcode)` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outgoing {
    Text,
    Binary,
    Ping,
    Pong,
}

/// The kind of message a send's opcode (absent: TEXT) names, if it names one a program may
/// send.
pub(crate) fn outgoing(opcode: Option<i64>) -> Option<Outgoing> {
    match opcode {
        None | Some(TEXT) => Some(Outgoing::Text),
        Some(BINARY) => Some(Outgoing::Binary),
        Some(PING) => Some(Outgoing::Ping),
        Some(PONG) => Some(Outgoing::Pong),
        Some(_) => None,
    }
}

/// Whether `bytes` may go as a TEXT message (valid UTF-8; several times faster than std's
/// check on long ASCII text).
pub(crate) fn is_valid_text(bytes: &[u8]) -> bool {
    simdutf8::basic::from_utf8(bytes).is_ok()
}

/// The error of a call on a connection that another call holds (only a bug could make that
/// happen: each call returns before Lua can make the next).
pub(crate) const IN_USE: &CStr = c"websocket: the connection is in use by another call";

/// The error of a panic caught before it reaches Lua (a bug).
pub(crate) const INTERNAL_ERROR: &CStr = c"websocket_native: internal error";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_without_opcode_is_text_and_unknown_opcodes_name_nothing() {
        assert_eq!(outgoing(None), Some(Outgoing::Text));
        assert_eq!(outgoing(Some(BINARY)), Some(Outgoing::Binary));
        assert_eq!(outgoing(Some(PONG)), Some(Outgoing::Pong));
        assert_eq!(outgoing(Some(8)), None);
        assert_eq!(opcode_of(false), BINARY);
    }
}
