//! Host name resolution with luasocket's error wording.
//!
//! Resolution calls getaddrinfo on the calling thread, as luasocket does: the core then
//! needs no helper threads, so nothing can outlive the Lua state that owns it.

use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::net::socket_error::UNKNOWN_HOST;

/// Every address `host` resolves to, for TCP on `port`, in getaddrinfo's order.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let c_host = CString::new(host).map_err(|_| UNKNOWN_HOST.to_string())?;
    // SAFETY: a zeroed addrinfo is the documented "no hints" value; we only set plain fields.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: c_host is NUL-terminated, hints is initialised, list receives the result.
    let status = unsafe { libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if status != 0 {
        return Err(gai_message(status));
    }
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: entry is a node of the list getaddrinfo returned and we have not freed it.
        let info = unsafe { &*entry };
        if let Some(ip) = socket_ip(info) {
            addresses.push(SocketAddr::new(ip, port));
        }
        entry = info.ai_next;
    }
    // SAFETY: list came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    if addresses.is_empty() {
        return Err(UNKNOWN_HOST.to_string());
    }
    Ok(addresses)
}

fn socket_ip(info: &libc::addrinfo) -> Option<IpAddr> {
    if info.ai_addr.is_null() {
        return None;
    }
    match info.ai_family {
        libc::AF_INET => {
            // SAFETY: for AF_INET, ai_addr points at a sockaddr_in.
            let raw = unsafe { &*(info.ai_addr as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                raw.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: for AF_INET6, ai_addr points at a sockaddr_in6.
            let raw = unsafe { &*(info.ai_addr as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(raw.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// luasocket's text for a getaddrinfo failure.
fn gai_message(status: i32) -> String {
    match status {
        libc::EAI_NONAME | libc::EAI_SERVICE => UNKNOWN_HOST.to_string(),
        libc::EAI_AGAIN => "temporary failure in name resolution".to_string(),
        libc::EAI_FAIL => "non-recoverable failure in name resolution".to_string(),
        libc::EAI_MEMORY => "memory allocation failure".to_string(),
        libc::EAI_SYSTEM => std::io::Error::last_os_error().to_string(),
        // SAFETY: gai_strerror returns a static NUL-terminated string for any code.
        other => unsafe { CStr::from_ptr(libc::gai_strerror(other)) }
            .to_string_lossy()
            .to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_need_no_lookup() {
        let v4 = resolve("127.0.0.1", 80).unwrap();
        assert_eq!(v4, vec!["127.0.0.1:80".parse().unwrap()]);
        let v6 = resolve("::1", 81).unwrap();
        assert_eq!(v6, vec!["[::1]:81".parse().unwrap()]);
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let addresses = resolve("localhost", 9).unwrap();
        assert!(addresses.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn unknown_names_use_luasocket_wording() {
        let err = resolve("no-such-host.invalid", 80).unwrap_err();
        assert_eq!(err, UNKNOWN_HOST);
    }
}
