//! The parameters of HTTP requests: query strings, boolean flags, and what the query API is
//! asked (`db`, `q`, `format`, `params`, from a JSON body or the query string).
//!
//! It turns text into values and says what is wrong in words a user can act on; which status
//! an error gets, and what the values then do, is the HTTP layer's.

use std::collections::HashMap;

use serde::Deserialize;

/// A parameter that could not be read; the text names it and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

/// A query string's parameters, percent- and `+`-decoded (a repeated name keeps its last value).
pub fn query_string(query: Option<&str>) -> HashMap<String, String> {
    query.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// A boolean parameter: `true`/`1` or `false`/`0`; absent or empty means `default`.
pub fn flag(params: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, ParamError> {
    match params.get(name).map(|s| s.as_str()) {
        None | Some("") => Ok(default),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(ParamError(format!("invalid value '{v}' for '{name}': expected true or false"))),
    }
}

/// What `/api/v3/query_sql` is asked.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct QueryRequest {
    pub db: Option<String>,
    pub q: Option<String>,
    pub format: Option<String>,
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

impl QueryRequest {
    /// From a POST's JSON body (when it has one), with the query string filling in whatever
    /// the body left out.
    pub fn parse(post: bool, qs: &HashMap<String, String>, body: &[u8]) -> Result<QueryRequest, ParamError> {
        let mut req = QueryRequest::default();
        if post && !body.iter().all(|b| b.is_ascii_whitespace()) {
            req = serde_json::from_slice(body).map_err(|e| {
                ParamError(format!("invalid JSON body: {e}; expected {{\"db\", \"q\", \"format\", \"params\"}}"))
            })?;
        }
        req.db = req.db.or_else(|| qs.get("db").cloned());
        req.q = req.q.or_else(|| qs.get("q").cloned());
        req.format = req.format.or_else(|| qs.get("format").cloned());
        if req.params.is_none() {
            if let Some(p) = qs.get("params") {
                let v: serde_json::Value = serde_json::from_str(p)
                    .map_err(|e| ParamError(format!("invalid 'params': {e}; expected a JSON object")))?;
                match v {
                    serde_json::Value::Object(m) => req.params = Some(m),
                    _ => return Err(ParamError("invalid 'params': expected a JSON object".into())),
                }
            }
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_the_last_repeat_wins() {
        let p = query_string(Some("db=a%20b&q=SELECT+1&db=c"));
        assert_eq!(p.get("db").map(String::as_str), Some("c"));
        assert_eq!(p.get("q").map(String::as_str), Some("SELECT 1"));
        assert!(query_string(None).is_empty());
    }

    #[test]
    fn flags_take_true_false_1_0_or_their_default() {
        let p = query_string(Some("a=true&b=0&c=&d=yes"));
        assert_eq!(flag(&p, "a", false), Ok(true));
        assert_eq!(flag(&p, "b", true), Ok(false));
        assert_eq!(flag(&p, "c", true), Ok(true));
        assert_eq!(flag(&p, "missing", false), Ok(false));
        assert!(flag(&p, "d", false).unwrap_err().0.contains("'yes' for 'd'"));
    }

    #[test]
    fn a_query_body_is_filled_in_from_the_query_string() {
        let qs = query_string(Some("db=x&format=csv&params=%7B%22a%22%3A1%7D"));
        let r = QueryRequest::parse(true, &qs, br#"{"q": "SELECT $a"}"#).unwrap();
        assert_eq!((r.db.as_deref(), r.q.as_deref(), r.format.as_deref()), (Some("x"), Some("SELECT $a"), Some("csv")));
        assert_eq!(r.params.unwrap()["a"], 1);
        // A GET ignores any body; a bad body or params is named.
        assert_eq!(QueryRequest::parse(false, &qs, b"{nonsense").unwrap().db.as_deref(), Some("x"));
        assert!(QueryRequest::parse(true, &qs, b"{nonsense").unwrap_err().0.contains("invalid JSON body"));
        let bad = query_string(Some("params=[1]"));
        assert!(QueryRequest::parse(false, &bad, b"").unwrap_err().0.contains("expected a JSON object"));
    }
}
