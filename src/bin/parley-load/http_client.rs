//! A minimal blocking HTTP/1.1 keep-alive client for parley's REST setup calls (register, login,
//! sessions, groups). Setup is argon2-bound on the server, so plain threads and blocking sockets
//! are enough here; only the measured traffic needs the non-blocking swarm.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct HttpClient {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

impl HttpClient {
    pub fn new(addr: SocketAddr, host: &str) -> HttpClient {
        HttpClient {
            addr,
            host: host.to_string(),
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one request and reads its answer, reconnecting once if a kept-alive connection was
    /// closed under it.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &str,
    ) -> io::Result<HttpAnswer> {
        match self.try_request(method, path, bearer, body) {
            Ok(answer) => Ok(answer),
            Err(_) => {
                self.stream = None;
                self.try_request(method, path, bearer, body)
            }
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &str,
    ) -> io::Result<HttpAnswer> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        let stream = self.stream.as_mut().expect("connected above");
        let auth = bearer
            .map(|token| format!("authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body.as_bytes());
        stream.write_all(&request)?;

        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = response
                .parse(&self.buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                let status = response.code.unwrap_or(0);
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0usize);
                let closes = response.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                });
                if self.buf.len() >= head_len + length {
                    let body = String::from_utf8_lossy(&self.buf[head_len..head_len + length])
                        .into_owned();
                    self.buf.drain(..head_len + length);
                    if closes {
                        self.stream = None;
                    }
                    return Ok(HttpAnswer { status, body });
                }
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The string value of `"key":"..."` in a small JSON answer (ids and tokens hold no escapes).
pub fn json_str<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":\"");
    let start = body.find(&pattern)? + pattern.len();
    let len = body[start..].find('"')?;
    Some(&body[start..start + len])
}
