//! A minimal HTTP/1.1 client for the ingest loop: one keep-alive connection per writer thread,
//! each POST sent as one vectored write of head and body, and the response read to its end.
//!
//! It exists because a general client copies a large body through an 8 KiB buffer: a 1 MiB
//! batch became ~130 `send` calls, and the load generator's own CPU (on the same two cores as
//! the server under test) capped what it could measure. It must never be used where TLS,
//! redirects or proxies could matter; every target here is on loopback.

use std::io::{self, BufRead, BufReader, IoSlice, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;

/// A reply: its status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Where to send: `host:port` and the path with its query, from an `http://` URL. Credentials
/// in the URL (`http://user:password@host/`) are sent as Basic auth, as curl sends them.
#[derive(Clone)]
pub struct Endpoint {
    authority: String,
    target: String,
    /// The `Authorization` header line, if the URL carried credentials.
    authorization: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint> {
        let rest = url.strip_prefix("http://").ok_or_else(|| anyhow!("only http:// URLs are supported: {url}"))?;
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (authorization, authority) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(userinfo)), host),
            None => (String::new(), authority),
        };
        if authority.is_empty() {
            bail!("no host in {url}");
        }
        Ok(Endpoint { authority: authority.to_string(), target: target.to_string(), authorization })
    }
}

/// One keep-alive connection, opened on first use and again after the server closes it.
pub struct Client {
    endpoint: Endpoint,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Client {
        Client { endpoint, timeout, conn: None }
    }

    /// POSTs `body`. A request on a reused connection that fails before any reply is sent once
    /// more on a fresh one (the server may have closed an idle connection).
    pub fn post(&mut self, content_type: &str, body: &[u8]) -> Result<Response> {
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\n{}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.endpoint.target,
            self.endpoint.authority,
            self.endpoint.authorization,
            body.len()
        );
        let reused = self.conn.is_some();
        match self.exchange(head.as_bytes(), body) {
            Err(_) if reused => {
                self.conn = None;
                self.exchange(head.as_bytes(), body)
            }
            other => other,
        }
    }

    fn exchange(&mut self, head: &[u8], body: &[u8]) -> Result<Response> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        write_all_vectored(conn.get_mut(), &mut [IoSlice::new(head), IoSlice::new(body)]).context("sending the request")?;
        let (response, keep) = read_response(&mut conn).context("reading the response")?;
        if keep {
            self.conn = Some(conn);
        }
        Ok(response)
    }

    fn connect(&self) -> Result<BufReader<TcpStream>> {
        let stream = TcpStream::connect(&self.endpoint.authority).with_context(|| format!("connecting to {}", self.endpoint.authority))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        Ok(BufReader::with_capacity(16 * 1024, stream))
    }
}

fn write_all_vectored(w: &mut impl Write, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one response; says whether the connection can carry another request.
fn read_response(r: &mut impl BufRead) -> Result<(Response, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        bail!("connection closed before a response");
    }
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("bad status line {line:?}"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = version == "HTTP/1.1";
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("connection closed in the response head");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { bail!("bad header line {header:?}") };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| anyhow!("bad Content-Length {value:?}"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep = !value.eq_ignore_ascii_case("close") && (keep || value.eq_ignore_ascii_case("keep-alive"));
        }
    }
    let mut body = Vec::new();
    if status == 204 || status == 304 || (100..200).contains(&status) {
        // No body, whatever the head says.
    } else if chunked {
        read_chunked(r, &mut body)?;
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
        keep = false;
    }
    Ok((Response { status, body }, keep))
}

fn read_chunked(r: &mut impl BufRead, body: &mut Vec<u8>) -> Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = line.trim_end().split(';').next().unwrap_or_default();
        let n = usize::from_str_radix(size, 16).map_err(|_| anyhow!("bad chunk size {line:?}"))?;
        if n == 0 {
            // Trailers, then the blank line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        let at = body.len();
        body.resize(at + n, 0);
        r.read_exact(&mut body[at..])?;
        line.clear();
        r.read_line(&mut line)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Response, bool) {
        read_response(&mut text.as_bytes()).expect("a response")
    }

    #[test]
    fn responses_are_read_by_length_by_chunks_and_to_the_end() {
        let (r, keep) = read("HTTP/1.1 204 No Content\r\nX: y\r\n\r\n");
        assert_eq!((r.status, r.body.len(), keep), (204, 0, true));
        let (r, keep) = read("HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\nerror");
        assert_eq!((r.status, r.body.as_slice(), keep), (400, &b"error"[..], true));
        let (r, keep) = read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n");
        assert_eq!((r.status, r.body.as_slice(), keep), (200, &b"abcde"[..], true));
        let (r, keep) = read("HTTP/1.0 200 OK\r\n\r\nall of it");
        assert_eq!((r.body.as_slice(), keep), (&b"all of it"[..], false));
        let (_, keep) = read("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!keep);
    }

    #[test]
    fn truncated_or_garbled_responses_are_errors() {
        for bad in ["", "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n"] {
            assert!(read_response(&mut bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints_split_authority_from_target() {
        let e = Endpoint::parse("http://127.0.0.1:8181/write?db=x&precision=ns").expect("parses");
        assert_eq!((e.authority.as_str(), e.target.as_str()), ("127.0.0.1:8181", "/write?db=x&precision=ns"));
        assert_eq!(Endpoint::parse("http://h:1").expect("parses").target, "/");
        let e = Endpoint::parse("http://u:tok@h:1/write").expect("parses");
        assert_eq!((e.authority.as_str(), e.authorization.as_str()), ("h:1", "Authorization: Basic dTp0b2s=\r\n"));
        assert!(Endpoint::parse("https://h/").is_err());
    }
}
