//! The setup's REST client: one keep-alive connection (the shared client's `Conn`) per setup
//! thread. Setup is argon2-bound on the server, so plain threads and blocking sockets are enough
//! here; only the measured traffic needs the non-blocking swarm.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use parley_client::http::{self as client, Conn, Response};

pub struct HttpClient {
    addr: SocketAddr,
    host: String,
    conn: Option<Conn>,
}

impl HttpClient {
    pub fn new(addr: SocketAddr, host: &str) -> HttpClient {
        HttpClient {
            addr,
            host: host.to_string(),
            conn: None,
        }
    }

    /// Sends one JSON request and reads its answer, reconnecting once if a kept-alive connection
    /// was closed under it.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &str,
    ) -> Result<Response, String> {
        let auth = bearer.map(|token| format!("Bearer {token}"));
        let mut headers = vec![("host", self.host.as_str())];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        headers.push(("content-type", "application/json"));
        let request = client::request(method, path, &headers, Some(body.as_bytes()));
        self.exchange(&request).or_else(|_| {
            self.conn = None;
            self.exchange(&request)
        })
    }

    fn exchange(&mut self, request: &[u8]) -> Result<Response, String> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
                    .map_err(|e| e.to_string())?;
                self.conn
                    .insert(Conn::new(stream).map_err(|e| e.to_string())?)
            }
        };
        conn.write(request).map_err(|e| e.to_string())?;
        let answer = conn.read_response(Instant::now() + Duration::from_secs(60))?;
        if answer
            .header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
        {
            self.conn = None;
        }
        Ok(answer)
    }
}

/// The string value of `"key":"..."` in a small JSON answer (ids and tokens hold no escapes).
pub fn json_str<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":\"");
    let start = body.find(&pattern)? + pattern.len();
    let len = body[start..].find('"')?;
    Some(&body[start..start + len])
}
