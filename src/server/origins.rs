//! `config.origins`: the pages a browser-facing server serves. A browser sends the page's
//! origin with every WebSocket request, and a page from another site must not reach a
//! server that trusts its users' cookies (cross-site WebSocket hijacking). The check runs
//! as soon as the request head is read, before `on_request`.

/// The origins a server admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origins {
    /// Serialized origins (`scheme://host[:port]`), compared without regard to case.
    listed: Vec<String>,
    /// Whether a request without an `Origin` header (not from a browser) is admitted.
    admits_no_origin: bool,
}

impl Origins {
    pub(crate) fn new(listed: Vec<String>, admits_no_origin: bool) -> Self {
        Origins {
            listed,
            admits_no_origin,
        }
    }

    /// Ok when a request with `origin` (its `Origin` header, if any) is admitted, else what
    /// to tell `on_error`.
    pub(crate) fn admit(&self, origin: Option<&str>) -> Result<(), String> {
        let admitted = match origin {
            None => self.admits_no_origin,
            Some(origin) => self
                .listed
                .iter()
                .any(|listed| listed.eq_ignore_ascii_case(origin.trim())),
        };
        if admitted {
            return Ok(());
        }
        Err(format!(
            "origin not allowed: {}",
            origin.unwrap_or("(no Origin header)")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_pass_and_no_origin_only_when_false_is_listed() {
        let strict = Origins::new(vec!["https://app.example".into()], false);
        assert_eq!(strict.admit(Some("https://app.example")), Ok(()));
        assert_eq!(strict.admit(Some("HTTPS://App.Example")), Ok(()));
        assert_eq!(
            strict.admit(Some("https://evil.example")),
            Err("origin not allowed: https://evil.example".into())
        );
        // A listed origin with a port is another origin.
        assert!(strict.admit(Some("https://app.example:8443")).is_err());
        assert_eq!(
            strict.admit(None),
            Err("origin not allowed: (no Origin header)".into())
        );
        let lenient = Origins::new(vec![], true);
        assert_eq!(lenient.admit(None), Ok(()));
        assert!(lenient.admit(Some("null")).is_err());
    }
}
