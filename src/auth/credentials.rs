//! Finding the token a request presents: `Authorization: Bearer T` or `Token T` (v2 clients),
//! `Basic` with the token as password, or v1's `?p=` query parameter.
//!
//! It only reads the request; whether the token is any good is [`super::Authority`]'s call.

use hyper::header::{HeaderMap, AUTHORIZATION};
use hyper::Uri;

use base64::Engine as _;

/// A credential that cannot be read, as opposed to one that is absent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Malformed(pub String);

/// The token a request carries, if any. `v1` also takes the `p` query parameter (InfluxDB 1.x
/// clients send `u` and `p`; the password is the token).
pub fn presented(headers: &HeaderMap, uri: &Uri, v1: bool) -> Result<Option<String>, Malformed> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Malformed("the Authorization header is not ASCII".into()))?.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
            if rest.is_empty() {
                return Err(Malformed(format!("the Authorization header's {scheme} scheme carries no token")));
            }
            return Ok(Some(rest.to_string()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Malformed("the Authorization header's Basic credentials are not base64 of 'user:token'".into()))?;
            let (_, password) = decoded.split_once(':').unwrap_or(("", &decoded));
            return Ok(Some(password.to_string()));
        }
        return Err(Malformed(format!("the Authorization scheme '{scheme}' is not Bearer, Token or Basic")));
    }
    if v1 {
        if let Some(q) = uri.query() {
            if let Some((_, p)) = url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "p") {
                return Ok(Some(p.into_owned()));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(auth: Option<&str>, uri: &str, v1: bool) -> Result<Option<String>, Malformed> {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(AUTHORIZATION, a.parse().unwrap());
        }
        presented(&h, &uri.parse().unwrap(), v1)
    }

    #[test]
    fn every_way_a_client_sends_a_token_is_read() {
        assert_eq!(with(Some("Bearer abc"), "/x", false), Ok(Some("abc".into())));
        assert_eq!(with(Some("token  abc "), "/x", false), Ok(Some("abc".into())));
        let basic = base64::engine::general_purpose::STANDARD.encode("me:abc");
        assert_eq!(with(Some(&format!("Basic {basic}")), "/x", false), Ok(Some("abc".into())));
        assert_eq!(with(None, "/write?db=a&u=me&p=abc", true), Ok(Some("abc".into())));
        // Only v1 routes take a token from the URL.
        assert_eq!(with(None, "/api/v3/write_lp?db=a&p=abc", false), Ok(None));
        assert_eq!(with(None, "/x", false), Ok(None));
    }

    #[test]
    fn unreadable_credentials_are_named() {
        assert!(with(Some("Bearer"), "/x", false).unwrap_err().0.contains("no token"));
        assert!(with(Some("Digest x"), "/x", false).unwrap_err().0.contains("Digest"));
        assert!(with(Some("Basic !!!"), "/x", false).unwrap_err().0.contains("base64"));
    }
}
