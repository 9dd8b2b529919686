//! permessage-deflate's parameters (RFC 7692 section 7.1): what a client offers, which
//! offer a server accepts and what it answers, and whether a client can honour the answer.
//!
//! Inflating always uses a 15-bit window, which decodes whatever window the peer deflates
//! with, so only the window this side deflates with is ever limited here. zlib cannot
//! deflate with an 8-bit window (it uses 9, which a peer holding 8 cannot decode): a
//! response asking for 8 fails the connect, and a server declines an offer asking for 8.

/// The extension's token in `Sec-WebSocket-Extensions`.
pub const NAME: &str = "permessage-deflate";

/// One side's choices, as the `compression` option gives them (all off: the defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wishes {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: Option<u8>,
    pub client_max_window_bits: Option<u8>,
}

/// What was agreed, as one side uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// This side resets its deflater after every message.
    pub deflate_no_context_takeover: bool,
    /// The peer resets its deflater after every message: this side may reset its inflater.
    pub inflate_no_context_takeover: bool,
    /// The window this side deflates with (9 to 15).
    pub deflate_window_bits: u8,
}

/// A parameter as it appears in an offer or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Param {
    name: String,
    value: Option<String>,
}

/// The `permessage-deflate` elements of a `Sec-WebSocket-Extensions` value, in order, each
/// as its parameters; other extensions are skipped.
fn deflate_elements(header: &str) -> Vec<Vec<Param>> {
    header
        .split(',')
        .filter_map(|element| {
            let mut parts = element.split(';').map(str::trim);
            if !parts.next()?.eq_ignore_ascii_case(NAME) {
                return None;
            }
            Some(
                parts
                    .filter(|part| !part.is_empty())
                    .map(|part| match part.split_once('=') {
                        Some((name, value)) => Param {
                            name: name.trim().to_ascii_lowercase(),
                            value: Some(value.trim().trim_matches('"').to_string()),
                        },
                        None => Param {
                            name: part.to_ascii_lowercase(),
                            value: None,
                        },
                    })
                    .collect(),
            )
        })
        .collect()
}

/// A window size parameter's value: 8 to 15.
fn window_bits(value: &Option<String>) -> Result<u8, String> {
    let text = value.as_deref().ok_or("a window size needs a value")?;
    match text.parse::<u8>() {
        Ok(bits @ 8..=15) if !text.starts_with('0') => Ok(bits),
        _ => Err(format!("window size {text} is not 8 to 15")),
    }
}

/// The parameters of one element, checked: known names, no repeats, values where due.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: named without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

fn parse(params: &[Param]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut seen: Vec<&str> = Vec::new();
    for param in params {
        if seen.contains(&param.name.as_str()) {
            return Err(format!("{} given twice", param.name));
        }
        seen.push(&param.name);
        match param.name.as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" => {
                if param.value.is_some() {
                    return Err(format!("{} takes no value", param.name));
                }
                if param.name.starts_with("server") {
                    parsed.server_no_context_takeover = true;
                } else {
                    parsed.client_no_context_takeover = true;
                }
            }
            "server_max_window_bits" => {
                parsed.server_max_window_bits = Some(window_bits(&param.value)?)
            }
            "client_max_window_bits" => {
                parsed.client_max_window_bits = Some(match &param.value {
                    None => None,
                    value => Some(window_bits(value)?),
                });
            }
            other => return Err(format!("unknown parameter {other}")),
        }
    }
    Ok(parsed)
}

/// The `Sec-WebSocket-Extensions` value a client with `wishes` sends. It always says
/// `client_max_window_bits` (so that a server may ask for a smaller window).
pub fn offer(wishes: &Wishes) -> String {
    let mut offer = NAME.to_string();
    if wishes.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if wishes.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = wishes.server_max_window_bits {
        offer.push_str(&format!("; server_max_window_bits={bits}"));
    }
    match wishes.client_max_window_bits {
        Some(bits) => offer.push_str(&format!("; client_max_window_bits={bits}")),
        None => offer.push_str("; client_max_window_bits"),
    }
    offer
}

/// A client's reading of the server's `Sec-WebSocket-Extensions` (None: the server did not
/// agree to compress), for the offer `wishes` made. An answer the offer did not allow is
/// an error (the connect fails).
pub fn accept_response(header: Option<&str>, wishes: &Wishes) -> Result<Option<Agreed>, String> {
    let Some(header) = header.filter(|value| !value.trim().is_empty()) else {
        return Ok(None);
    };
    let elements = deflate_elements(header);
    let named = header
        .split(',')
        .filter(|element| !element.trim().is_empty())
        .count();
    if elements.len() != named {
        return Err(format!(
            "the server answered with an extension that was not offered: {header}"
        ));
    }
    let [params] = elements.as_slice() else {
        return Err(format!("the server answered {NAME} more than once"));
    };
    let parsed = parse(params)?;
    if wishes.server_no_context_takeover && !parsed.server_no_context_takeover {
        return Err("the server did not agree to server_no_context_takeover".into());
    }
    if let (Some(offered), Some(answered)) =
        (wishes.server_max_window_bits, parsed.server_max_window_bits)
    {
        if answered > offered {
            return Err(format!(
                "server_max_window_bits={answered} is above the {offered} offered"
            ));
        }
    }
    if wishes.server_max_window_bits.is_some() && parsed.server_max_window_bits.is_none() {
        return Err("the server did not agree to server_max_window_bits".into());
    }
    let deflate_window_bits = match parsed.client_max_window_bits {
        Some(None) => return Err("client_max_window_bits needs a value in a response".into()),
        Some(Some(8)) => {
            return Err(
                "client_max_window_bits=8 cannot be honoured (zlib deflates with 9 at least)"
                    .into(),
            )
        }
        Some(Some(bits)) => bits.min(wishes.client_max_window_bits.unwrap_or(15)),
        None => wishes.client_max_window_bits.unwrap_or(15),
    };
    Ok(Some(Agreed {
        deflate_no_context_takeover: parsed.client_no_context_takeover
            || wishes.client_no_context_takeover,
        inflate_no_context_takeover: parsed.server_no_context_takeover,
        deflate_window_bits: deflate_window_bits.max(9),
    }))
}

/// A server's choice among a client's offers (`Sec-WebSocket-Extensions`), with its own
/// `wishes`: the response's header value and what was agreed, or None when no offer can be
/// accepted (the connection goes on without compression).
pub fn accept_offer(header: &str, wishes: &Wishes) -> Option<(String, Agreed)> {
    deflate_elements(header).iter().find_map(|params| {
        let parsed = parse(params).ok()?;
        // The window this server deflates with: the smaller of the client's limit and ours.
        let window = match (parsed.server_max_window_bits, wishes.server_max_window_bits) {
            (Some(8), _) => return None,
            (Some(offered), Some(ours)) => Some(offered.min(ours)),
            (offered, ours) => offered.or(ours),
        };
        let server_no_context_takeover =
            parsed.server_no_context_takeover || wishes.server_no_context_takeover;
        let client_no_context_takeover =
            parsed.client_no_context_takeover || wishes.client_no_context_takeover;
        let mut response = NAME.to_string();
        if server_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = window {
            response.push_str(&format!("; server_max_window_bits={}", bits.max(9)));
        }
        // Only if offered: a smaller client window saves the client memory, not us.
        if let (Some(offered), Some(ours)) =
            (parsed.client_max_window_bits, wishes.client_max_window_bits)
        {
            let bits = offered.map_or(ours, |offered| offered.min(ours));
            response.push_str(&format!("; client_max_window_bits={bits}"));
        }
        let agreed = Agreed {
            deflate_no_context_takeover: server_no_context_takeover,
            inflate_no_context_takeover: client_no_context_takeover,
            deflate_window_bits: window.unwrap_or(15).max(9),
        };
        Some((response, agreed))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_takes_the_first_offer_it_can_honour_and_answers_its_terms() {
        let wishes = Wishes::default();
        let (response, agreed) =
            accept_offer("permessage-deflate; client_max_window_bits", &wishes).unwrap();
        assert_eq!(response, "permessage-deflate");
        assert_eq!(
            agreed,
            Agreed {
                deflate_no_context_takeover: false,
                inflate_no_context_takeover: false,
                deflate_window_bits: 15
            }
        );
        // The first offer asks for an 8-bit window, the second is the fallback.
        let header = "x-other, permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
        let (response, agreed) = accept_offer(header, &wishes).unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        );
        assert!(agreed.deflate_no_context_takeover);
        assert_eq!(agreed.deflate_window_bits, 10);
        // Malformed offers are skipped.
        assert_eq!(
            accept_offer("permessage-deflate; server_max_window_bits=16", &wishes),
            None
        );
        assert_eq!(accept_offer("permessage-deflate; foo", &wishes), None);
        assert_eq!(
            accept_offer(
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                &wishes
            ),
            None
        );
        assert_eq!(accept_offer("x-webkit-deflate-frame", &wishes), None);
        // The server's own wishes.
        let strict = Wishes {
            client_no_context_takeover: true,
            server_max_window_bits: Some(12),
            client_max_window_bits: Some(11),
            ..Wishes::default()
        };
        let (response, agreed) =
            accept_offer("permessage-deflate; client_max_window_bits", &strict).unwrap();
        assert_eq!(
            response,
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11"
        );
        assert!(agreed.inflate_no_context_takeover);
        let (response, _) = accept_offer("permessage-deflate", &strict).unwrap();
        assert_eq!(
            response,
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=12"
        );
    }

    #[test]
    fn a_client_offers_its_wishes_and_fails_an_answer_they_did_not_allow() {
        let plain = Wishes::default();
        assert_eq!(offer(&plain), "permessage-deflate; client_max_window_bits");
        let wishes = Wishes {
            server_no_context_takeover: true,
            server_max_window_bits: Some(10),
            ..Wishes::default()
        };
        assert_eq!(
            offer(&wishes),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits"
        );
        assert_eq!(accept_response(None, &plain), Ok(None));
        let agreed = accept_response(
            Some("permessage-deflate; client_max_window_bits=12"),
            &plain,
        )
        .unwrap()
        .unwrap();
        assert_eq!(agreed.deflate_window_bits, 12);
        assert!(accept_response(
            Some("permessage-deflate; server_max_window_bits=10"),
            &wishes
        )
        .unwrap_err()
        .contains("server_no_context_takeover"));
        assert!(accept_response(
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=12"),
            &wishes
        )
        .unwrap_err()
        .contains("above"));
        assert!(
            accept_response(Some("permessage-deflate; client_max_window_bits"), &plain).is_err()
        );
        assert!(
            accept_response(Some("permessage-deflate; client_max_window_bits=8"), &plain).is_err()
        );
        assert!(accept_response(Some("permessage-deflate; mystery=1"), &plain).is_err());
        assert!(accept_response(Some("x-other"), &plain)
            .unwrap_err()
            .contains("not offered"));
        assert!(accept_response(Some("permessage-deflate, permessage-deflate"), &plain).is_err());
        let agreed = accept_response(
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            &plain,
        )
        .unwrap()
        .unwrap();
        assert!(agreed.deflate_no_context_takeover && agreed.inflate_no_context_takeover);
    }
}
