//! Token text: making it, hashing it, comparing hashes, and the offline token file.
//!
//! A token is `apiv3_` and 43 characters of URL-safe base64 over 32 random bytes from the
//! operating system. Only its SHA-256 is ever stored; this module never logs anything.

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every token starts with, as InfluxDB 3's do.
pub const PREFIX: &str = "apiv3_";

/// The SHA-256 of a token's text.
pub type TokenHash = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
    #[error("admin token file '{path}': {reason}")]
    File { path: String, reason: String },
}

/// A new random token's text.
pub fn generate() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The hash as the catalog stores it.
pub fn hash_hex(token: &str) -> String {
    to_hex(&hash(token))
}

pub fn to_hex(h: &TokenHash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(s: &str) -> Option<TokenHash> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Equal, taking the same time whatever the bytes.
pub fn same(a: &TokenHash, b: &TokenHash) -> bool {
    a.ct_eq(b).into()
}

/// The offline admin token file InfluxDB 3 writes with `create token --admin --offline` and
/// reads with `serve --admin-token-file`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfflineTokenFile {
    pub token: String,
    #[serde(default = "operator_name")]
    pub name: String,
    /// Milliseconds since the epoch; absent: it never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_millis: Option<i64>,
}

fn operator_name() -> String {
    pipeline::tokens::OPERATOR_TOKEN_NAME.to_string()
}

impl OfflineTokenFile {
    pub fn read(path: &Path) -> Result<OfflineTokenFile, TokenError> {
        let fail = |reason: String| TokenError::File { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let file: OfflineTokenFile = serde_json::from_str(&text)
            .map_err(|e| fail(format!("expected JSON {{\"token\", \"name\", \"expiry_millis\"}}: {e}")))?;
        if !file.token.starts_with(PREFIX) || file.token.len() < PREFIX.len() + 16 {
            return Err(fail(format!("the token must start with '{PREFIX}' and hold at least 16 more characters")));
        }
        pipeline::tokens::check_name(&file.name).map_err(fail)?;
        Ok(file)
    }

    /// Writes the file readable by its owner only, as it holds a secret.
    pub fn write(&self, path: &Path) -> Result<(), TokenError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |e: std::io::Error| TokenError::File { path: path.display().to_string(), reason: e.to_string() };
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(std::io::Error::other(e)))?;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(fail)?;
        f.write_all(text.as_bytes()).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_distinct_and_hash_round_trips_through_hex() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43);
        assert_ne!(a, b);
        let h = hash(&a);
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert!(same(&h, &hash(&a)) && !same(&h, &hash(&b)));
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn the_offline_file_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let f = OfflineTokenFile { token: generate().unwrap(), name: "_admin".into(), expiry_millis: None };
        f.write(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(OfflineTokenFile::read(&path).unwrap().token, f.token);
        std::fs::write(dir.path().join("bad.json"), "{\"token\": \"short\"}").unwrap();
        assert!(OfflineTokenFile::read(&dir.path().join("bad.json")).is_err());
        // A file that is not there is refused rather than overwritten.
        assert!(f.write(&path).is_err());
    }
}
