//! A fault-injecting HTTP proxy on 127.0.0.1 in front of a real server: each request is
//! forwarded, or — at a set rate, chosen by a seeded generator — met with one of the network
//! failures a WebDAV client must survive:
//!
//! - **reset before**: the connection is closed before the request reaches the server;
//! - **reset after**: the request reaches the server and is carried out, but the answer is
//!   lost (the client cannot know whether its write happened);
//! - **unavailable**: `503 Service Unavailable` without asking the server;
//! - **truncated**: the answer's head and half of its body, then the connection closes.
//!
//! Each client connection carries one request (`Connection: close` both ways), so a fault hits
//! exactly one request. Request bodies must have a `Content-Length` (ureq sends one for
//! in-memory bodies).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy did, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests seen.
    pub requests: u64,
    /// Requests forwarded and answered in full.
    pub forwarded: u64,
    /// Connections closed before forwarding.
    pub reset_before: u64,
    /// Requests carried out whose answer was dropped.
    pub reset_after: u64,
    /// Requests answered 503 by the proxy.
    pub unavailable: u64,
    /// Answers cut in the middle of the body.
    pub truncated: u64,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    ResetBefore,
    ResetAfter,
    Unavailable,
    Truncated,
}

struct Shared {
    upstream: SocketAddr,
    enabled: AtomicBool,
    /// Fault rate in millionths.
    rate_ppm: AtomicU64,
    rng: Mutex<fastrand::Rng>,
    stats: Mutex<FaultStats>,
    stop: AtomicBool,
}

/// A running proxy; it stops accepting when dropped.
pub struct FaultProxy {
    url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url)
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy to the server at `upstream_url` (`http://127.0.0.1:PORT/…`) that fails
    /// each request with probability `rate` (0 to 1), the kind of failure and which requests
    /// fail drawn from `seed`.
    pub fn start(upstream_url: &str, rate: f64, seed: u64) -> io::Result<FaultProxy> {
        let authority = upstream_url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| io::Error::other(format!("not an http:// URL: {upstream_url}")))?;
        let upstream: SocketAddr = authority
            .parse()
            .map_err(|e| io::Error::other(format!("{authority}: {e}")))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let path = upstream_url
            .strip_prefix("http://")
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("/");
        let shared = Arc::new(Shared {
            upstream,
            enabled: AtomicBool::new(true),
            rate_ppm: AtomicU64::new((rate.clamp(0.0, 1.0) * 1e6) as u64),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            stats: Mutex::new(FaultStats::default()),
            stop: AtomicBool::new(false),
        });
        let accept = shared.clone();
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if accept.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = accept.clone();
                    std::thread::spawn(move || {
                        let _ = handle(&shared, conn);
                    });
                }
            })?;
        Ok(FaultProxy {
            url: format!("http://{addr}{path}"),
            addr,
            shared,
        })
    }

    /// The proxy's URL: the upstream URL with the proxy's port.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Turns fault injection on or off (requests are forwarded either way).
    pub fn set_faults(&self, on: bool) {
        self.shared.enabled.store(on, Ordering::SeqCst);
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> FaultStats {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn choose(shared: &Shared) -> Fault {
    if !shared.enabled.load(Ordering::SeqCst) {
        return Fault::None;
    }
    let mut rng = shared.rng.lock().unwrap_or_else(|e| e.into_inner());
    if rng.u64(..1_000_000) >= shared.rate_ppm.load(Ordering::SeqCst) {
        return Fault::None;
    }
    match rng.u8(..4) {
        0 => Fault::ResetBefore,
        1 => Fault::ResetAfter,
        2 => Fault::Unavailable,
        _ => Fault::Truncated,
    }
}

fn count(shared: &Shared, f: impl FnOnce(&mut FaultStats)) {
    f(&mut shared.stats.lock().unwrap_or_else(|e| e.into_inner()));
}

/// Reads an HTTP message head (up to the blank line) and returns it with what was read past
/// it.
fn read_head(stream: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > 1 << 20 {
            return Err(io::Error::other("head too long"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The head with any `Connection` header replaced by `Connection: close`.
fn closing(head: &str) -> String {
    let mut out = String::new();
    for line in head.trim_end_matches("\r\n").split("\r\n") {
        let is_connection = line
            .split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"));
        if !is_connection {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn handle(shared: &Shared, mut client: TcpStream) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, mut body) = read_head(&mut client)?;
    let want = content_length(&head);
    while body.len() < want {
        let mut chunk = vec![0u8; want - body.len()];
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    count(shared, |s| s.requests += 1);
    let fault = choose(shared);
    match fault {
        Fault::ResetBefore => {
            count(shared, |s| s.reset_before += 1);
            return client.shutdown(Shutdown::Both);
        }
        Fault::Unavailable => {
            count(shared, |s| s.unavailable += 1);
            client.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return client.shutdown(Shutdown::Both);
        }
        _ => {}
    }
    let mut upstream = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(10))?;
    upstream.set_read_timeout(Some(Duration::from_secs(60)))?;
    upstream.write_all(closing(&head).as_bytes())?;
    upstream.write_all(&body)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(answer.len());
    let (answer_head, answer_body) = answer.split_at(split);
    let answer_head = closing(&String::from_utf8_lossy(answer_head));
    match fault {
        Fault::ResetAfter => {
            count(shared, |s| s.reset_after += 1);
            client.shutdown(Shutdown::Both)
        }
        Fault::Truncated if answer_body.len() >= 2 => {
            count(shared, |s| s.truncated += 1);
            client.write_all(answer_head.as_bytes())?;
            client.write_all(&answer_body[..answer_body.len() / 2])?;
            client.shutdown(Shutdown::Both)
        }
        _ => {
            count(shared, |s| s.forwarded += 1);
            client.write_all(answer_head.as_bytes())?;
            client.write_all(answer_body)?;
            client.shutdown(Shutdown::Both)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_rewritten_to_close() {
        let h = "GET / HTTP/1.1\r\nHost: x\r\nconnection: keep-alive\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(
            closing(h),
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(content_length(h), 3);
        assert_eq!(content_length("GET / HTTP/1.1\r\n\r\n"), 0);
    }
}
