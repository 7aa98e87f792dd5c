//! The Nextcloud stand-in's HTTP/1.1 server: one thread per connection (so requests on
//! different connections really run at the same time), keep-alive, request bodies with
//! `Content-Length` or chunked, `Expect: 100-continue`.
//!
//! Not tiny_http: its connection pool hands a burst of new keep-alive connections to threads
//! that are already busy with other keep-alive connections (it counts idle threads before they
//! wake), so with 8 racing clients some requests waited until another client hung up.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Reply, Req};

/// How long a keep-alive connection may stay idle (nginx's default `keepalive_timeout`).
const IDLE: Duration = Duration::from_secs(75);
/// The largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

struct Conn {
    stream: TcpStream,
    thread: JoinHandle<()>,
}

/// A listening server; [`HttpServer::stop`] (or dropping it) closes every connection and waits
/// for the requests under way.
pub(super) struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl HttpServer {
    /// Listens on a free port of `127.0.0.1` and answers each request with `handler`.
    pub(super) fn start(handler: Handler) -> io::Result<HttpServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let accept = std::thread::Builder::new()
            .name("nextcloud-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let Ok(registered) = stream.try_clone() else {
                        continue;
                    };
                    let (handler, stop) = (handler.clone(), stop2.clone());
                    let thread = std::thread::Builder::new()
                        .name("nextcloud-conn".into())
                        .spawn(move || {
                            let _ = serve(stream, &*handler, &stop);
                        });
                    let Ok(thread) = thread else { continue };
                    let mut list = conns2.lock().unwrap_or_else(|e| e.into_inner());
                    list.retain(|c| !c.thread.is_finished());
                    list.push(Conn {
                        stream: registered,
                        thread,
                    });
                }
            })?;
        Ok(HttpServer {
            addr,
            stop,
            accept: Some(accept),
            conns,
        })
    }

    /// The address it listens on.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes the connections and waits for their threads.
    pub(super) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for c in &conns {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        for c in conns {
            let _ = c.thread.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves the requests of one connection until it closes.
fn serve(
    stream: TcpStream,
    handler: &(dyn Fn(&Req) -> Reply + Send + Sync),
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let _ = stream.set_nodelay(true);
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    while !stop.load(Ordering::SeqCst) {
        let Some(head) = read_head(&mut input)? else {
            return Ok(());
        };
        let Some((method, target, http10, headers)) = parse_head(&head) else {
            write_reply(&mut out, &Reply::new(400), false, false)?;
            return Ok(());
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_ascii_lowercase())
        };
        let connection = header("Connection").unwrap_or_default();
        let keep_alive = if http10 {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        };
        if header("Expect").is_some_and(|e| e == "100-continue") {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            out.flush()?;
        }
        let body = if header("Transfer-Encoding").is_some_and(|t| t.contains("chunked")) {
            read_chunked(&mut input)?
        } else {
            match header("Content-Length").map(|l| l.parse::<usize>()) {
                None => Vec::new(),
                Some(Ok(n)) => {
                    let mut body = vec![0; n];
                    input.read_exact(&mut body)?;
                    body
                }
                Some(Err(_)) => {
                    write_reply(&mut out, &Reply::new(400), false, false)?;
                    return Ok(());
                }
            }
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let req = Req {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body,
        };
        let reply = handler(&req);
        write_reply(&mut out, &reply, req.method == "HEAD", keep_alive)?;
        if !keep_alive {
            let _ = out.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
    Ok(())
}

/// Reads up to the blank line that ends a request head; `None` at a clean end of stream (or
/// an idle timeout) before the first byte.
fn read_head(input: &mut BufReader<TcpStream>) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = match input.read_until(b'\n', &mut head) {
            Ok(n) => n,
            Err(e)
                if head.is_empty()
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                // Blank lines between requests are allowed (RFC 9112 §2.2).
                head.clear();
                continue;
            }
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::other("request head too long"));
        }
    }
}

type Head = (String, String, bool, Vec<(String, String)>);

fn parse_head(head: &str) -> Option<Head> {
    let mut lines = head.lines();
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let http10 = match version.trim() {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return None,
    };
    if method.is_empty() || !target.starts_with('/') {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Some((method.to_string(), target.to_string(), http10, headers))
}

fn read_chunked(input: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        input.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size.trim(), 16)
            .map_err(|_| io::Error::other("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if input.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        input.read_exact(&mut body[start..])?;
        line.clear();
        input.read_line(&mut line)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        207 => "Multi-Status",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        415 => "Unsupported Media Type",
        423 => "Locked",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Unknown",
    }
}

fn write_reply(out: &mut TcpStream, reply: &Reply, head: bool, keep_alive: bool) -> io::Result<()> {
    let mut msg = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    msg.push_str(&format!(
        "Date: {}\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    ));
    if !reply
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("server"))
    {
        msg.push_str("Server: nginx\r\n");
    }
    for (k, v) in &reply.headers {
        // Header values are ours; keep them on one line whatever they hold.
        let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        msg.push_str(&format!("{k}: {v}\r\n"));
    }
    let bodiless = matches!(reply.status, 100..=199 | 204 | 304);
    if !bodiless {
        msg.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    msg.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut bytes = msg.into_bytes();
    if !head && !bodiless {
        bytes.extend_from_slice(&reply.body);
    }
    out.write_all(&bytes)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse() {
        let (m, t, http10, h) =
            parse_head("PROPFIND /a%20b?x=1 HTTP/1.1\r\nDepth: 1\r\nX-Y:  z \r\n\r\n").unwrap();
        assert_eq!(
            (m.as_str(), t.as_str(), http10),
            ("PROPFIND", "/a%20b?x=1", false)
        );
        assert_eq!(
            h,
            [("Depth".into(), "1".into()), ("X-Y".into(), "z".into())]
        );
        assert!(parse_head("GET / HTTP/2\r\n\r\n").is_none());
        assert!(parse_head("GET /\r\n\r\n").is_none());
        assert!(parse_head("GET / HTTP/1.1\r\nno colon\r\n\r\n").is_none());
    }
}
