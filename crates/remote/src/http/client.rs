//! The blocking HTTP client of the WebDAV and S3 backends and the Login Flow: a thin layer over
//! a [`ureq::Agent`] (rustls, the platform's trust store, connections reused, no async
//! runtime) that keeps one deadline for a whole request, redirects included, and follows
//! redirects itself by a [`Redirects`] policy, as reqwest did before: 301/302 keep the method
//! and body except for POST, 303 becomes GET, 307/308 repeat the request, and the
//! credentials are dropped when a redirect leaves the host.

use std::io::Read;
use std::time::{Duration, Instant};

use ureq::http::{self, HeaderMap, HeaderValue, Method, StatusCode};
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use url::Url;

/// Which redirects a client follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redirects {
    /// None: a 3xx answer is returned as it is (S3: a redirect names another region).
    None,
    /// Up to this many (the Login Flow: 10).
    Limited(usize),
    /// WebDAV: up to 5, but not the one from a folder's URL to the same URL with `/`, whose
    /// answer itself says "this is a folder".
    WebDav,
}

/// What a redirect policy says of one redirect.
enum Verdict {
    Follow,
    Stop,
    TooMany,
}

impl Redirects {
    /// `previous` holds every URL requested so far, the one just answered last.
    fn check(self, next: &Url, previous: &[Url]) -> Verdict {
        match self {
            Redirects::None => Verdict::Stop,
            Redirects::Limited(n) if previous.len() > n => Verdict::TooMany,
            Redirects::Limited(_) => Verdict::Follow,
            Redirects::WebDav => {
                let to_slash = previous
                    .last()
                    .is_some_and(|prev| next.path() == format!("{}/", prev.path()));
                if to_slash {
                    Verdict::Stop
                } else if previous.len() > 5 {
                    Verdict::TooMany
                } else {
                    Verdict::Follow
                }
            }
        }
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// From the transport: connecting, TLS, timeouts, a broken answer.
    Transport(ureq::Error),
    /// Past the request's deadline before an answer came.
    Deadline,
    /// A bad URL or header, or a redirect to somewhere that cannot be requested.
    Builder(String),
    /// More redirects than the policy allows.
    TooManyRedirects,
    /// An https server that hung up during the TLS handshake (a plain-http server, say).
    TlsHandshakeEof,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Transport(e) => match e {
                // ureq says "io: …"; the io error says enough.
                ureq::Error::Io(io) => write!(f, "{io}"),
                e => write!(f, "{e}"),
            },
            HttpError::Deadline => f.write_str("operation timed out"),
            HttpError::Builder(detail) => f.write_str(detail),
            HttpError::TooManyRedirects => f.write_str("too many redirects"),
            HttpError::TlsHandshakeEof => f.write_str("tls handshake eof"),
        }
    }
}

impl HttpError {
    /// A timeout: the connect timeout or the request's deadline.
    pub(crate) fn is_timeout(&self) -> bool {
        match self {
            HttpError::Deadline => true,
            HttpError::Transport(ureq::Error::Timeout(_)) => true,
            HttpError::Transport(ureq::Error::Io(io)) => {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                )
            }
            _ => false,
        }
    }

    /// A failure to reach the server at all (name lookup, refused or unreachable).
    pub(crate) fn is_connect(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            HttpError::Transport(ureq::Error::HostNotFound | ureq::Error::ConnectionFailed) => true,
            HttpError::Transport(ureq::Error::Io(io)) => matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::AddrNotAvailable
                    | K::NetworkDown
            ),
            _ => false,
        }
    }

    /// A bad request or redirect: repeating it fails the same way.
    pub(crate) fn is_builder_or_redirect(&self) -> bool {
        matches!(
            self,
            HttpError::Builder(_)
                | HttpError::TooManyRedirects
                | HttpError::Transport(
                    ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::RedirectFailed
                )
        )
    }

    /// A TLS failure: the handshake, or the certificate (`(true, …)` for the latter), with
    /// what rustls said.
    pub(crate) fn tls(&self) -> Option<(bool, String)> {
        let e = match self {
            HttpError::Transport(e) => e,
            HttpError::TlsHandshakeEof => return Some((false, self.to_string())),
            _ => return None,
        };
        let rustls = match e {
            ureq::Error::Rustls(r) => Some(r),
            ureq::Error::Io(io) => io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        if let Some(r) = rustls {
            let certificate = matches!(
                r,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            );
            return Some((certificate, r.to_string()));
        }
        match e {
            ureq::Error::Tls(t) => Some((false, t.to_string())),
            ureq::Error::TlsRequired => Some((false, e.to_string())),
            _ => None,
        }
    }
}

impl From<ureq::Error> for HttpError {
    fn from(e: ureq::Error) -> Self {
        HttpError::Transport(e)
    }
}

/// A blocking HTTP client: an agent, a deadline for each request, a redirect policy.
pub(crate) struct Client {
    agent: ureq::Agent,
    timeout: Duration,
    redirects: Redirects,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .field("redirects", &self.redirects)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client: `connect_timeout` to connect, `timeout` for each whole request (body and
    /// redirects included).
    pub(crate) fn new(connect_timeout: Duration, timeout: Duration, redirects: Redirects) -> Self {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(timeout))
            .user_agent(concat!("deltasync/", env!("CARGO_PKG_VERSION")))
            // Every status is an answer for the caller to read, not an error.
            .http_status_as_error(false)
            // Redirects are followed here, by the policy (ureq would drop the credentials
            // on any redirect and turn a redirected PROPFIND into a GET).
            .max_redirects(0)
            // PROPFIND, MKCOL, MOVE.
            .allow_non_standard_methods(true)
            .max_idle_age(Duration::from_secs(50))
            .build()
            .new_agent();
        Client {
            agent,
            timeout,
            redirects,
        }
    }

    /// A request with `method` to `url`.
    pub(crate) fn request(&self, method: Method, url: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A POST to `url`.
    pub(crate) fn post(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::POST, url)
    }
}

/// A request being built: headers and body are checked when it is sent.
pub(crate) struct RequestBuilder<'a> {
    client: &'a Client,
    method: Method,
    url: String,
    headers: Vec<(String, String, bool)>,
    body: Option<Vec<u8>>,
}

/// Headers that describe a body, dropped with it when a redirect turns a request into a GET.
const PAYLOAD_HEADERS: [&str; 4] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
];

/// Headers that carry credentials, dropped when a redirect leaves the host.
const SENSITIVE_HEADERS: [&str; 5] = [
    "authorization",
    "cookie",
    "cookie2",
    "proxy-authorization",
    "www-authenticate",
];

impl RequestBuilder<'_> {
    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string(), false));
        self
    }

    /// Sets the body (sent with a `Content-Length`).
    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Basic auth (the header is marked sensitive, and dropped on a redirect to another host).
    pub(crate) fn basic_auth(mut self, user: &str, password: Option<&str>) -> Self {
        use base64::Engine as _;
        let plain = format!("{user}:{}", password.unwrap_or_default());
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(plain)
        );
        self.headers.push(("authorization".into(), value, true));
        self
    }

    /// Sends the request, following redirects by the client's policy, all within the
    /// client's deadline.
    pub(crate) fn send(self) -> Result<Response, HttpError> {
        let RequestBuilder {
            client,
            mut method,
            url,
            mut headers,
            mut body,
        } = self;
        let started = Instant::now();
        let mut url = Url::parse(&url).map_err(|e| HttpError::Builder(format!("{e}: {url}")))?;
        let mut previous: Vec<Url> = Vec::new();
        loop {
            let remaining = client.timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(HttpError::Deadline);
            }
            let resp = send_once(client, &method, &url, &headers, body.as_deref(), remaining)?;
            let status = resp.status();
            if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok(Response::new(resp, url));
            }
            let Some(next) = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .and_then(|loc| url.join(loc).ok())
            else {
                return Ok(Response::new(resp, url));
            };
            previous.push(url.clone());
            match client.redirects.check(&next, &previous) {
                Verdict::Stop => return Ok(Response::new(resp, url)),
                Verdict::TooMany => return Err(HttpError::TooManyRedirects),
                Verdict::Follow => {}
            }
            if next.scheme() != "http" && next.scheme() != "https" {
                return Err(HttpError::Builder(format!(
                    "a redirect to an unsupported URL: {next}"
                )));
            }
            let to_get = match status {
                StatusCode::SEE_OTHER => method != Method::HEAD,
                StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => method == Method::POST,
                _ => false,
            };
            if to_get {
                method = Method::GET;
                body = None;
                headers.retain(|(name, _, _)| !PAYLOAD_HEADERS.contains(&name.as_str()));
            }
            let cross_host = next.host_str() != url.host_str()
                || next.port_or_known_default() != url.port_or_known_default()
                || next.scheme() != url.scheme();
            if cross_host {
                headers.retain(|(name, _, _)| !SENSITIVE_HEADERS.contains(&name.as_str()));
            }
            tracing::debug!(from = %url, to = %next, %status, "following a redirect");
            url = next;
        }
    }
}

/// One request, no redirect followed, within `remaining`.
fn send_once(
    client: &Client,
    method: &Method,
    url: &Url,
    headers: &[(String, String, bool)],
    body: Option<&[u8]>,
    remaining: Duration,
) -> Result<http::Response<ureq::Body>, HttpError> {
    let mut builder = http::Request::builder()
        .method(method.clone())
        .uri(url.as_str());
    for (name, value, sensitive) in headers {
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| HttpError::Builder(format!("header {name} is not valid")))?;
        value.set_sensitive(*sensitive);
        builder = builder.header(name.as_str(), value);
    }
    let agent = &client.agent;
    let answer = match body {
        Some(body) => {
            let req = builder
                .body(body)
                .map_err(|e| HttpError::Builder(e.to_string()))?;
            let req = agent
                .configure_request(req)
                .timeout_global(Some(remaining))
                .build();
            agent.run(req)
        }
        None => {
            let req = builder
                .body(())
                .map_err(|e| HttpError::Builder(e.to_string()))?;
            let req = agent
                .configure_request(req)
                .timeout_global(Some(remaining))
                .build();
            agent.run(req)
        }
    };
    answer.map_err(|e| match e {
        // rustls's handshake says a bare "unexpected end of file" when the server hangs up;
        // ureq's own and rustls's later ones carry a message.
        ureq::Error::Io(io)
            if url.scheme() == "https"
                && io.kind() == std::io::ErrorKind::UnexpectedEof
                && io.get_ref().is_none() =>
        {
            HttpError::TlsHandshakeEof
        }
        e => HttpError::Transport(e),
    })
}

/// An answer: status, headers, the URL that gave it (after redirects), and the body to read.
pub(crate) struct Response {
    inner: http::Response<ureq::Body>,
    url: Url,
}

impl Response {
    fn new(inner: http::Response<ureq::Body>, url: Url) -> Self {
        Response { inner, url }
    }

    /// The status.
    pub(crate) fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The headers.
    pub(crate) fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The URL that gave this answer.
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// The body's length, when the answer declares it.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.inner.body().content_length()
    }

    /// The body as it arrives, without limit (the caller caps it).
    pub(crate) fn reader(&mut self) -> impl Read + '_ {
        self.inner.body_mut().as_reader()
    }

    /// The body's first `max` bytes as text (invalid UTF-8 replaced); the rest is not read.
    pub(crate) fn text_up_to(mut self, max: u64) -> Result<String, HttpError> {
        let mut bytes = Vec::new();
        self.reader()
            .take(max)
            .read_to_end(&mut bytes)
            .map_err(|e| HttpError::Transport(ureq::Error::from(e)))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
