//! A small blocking HTTP client for the stand-in's tests, on ureq (as the remote crate's
//! backends): requests with any method, headers, a body and basic auth; every status is an
//! answer; redirects are not followed (the stand-in sends none).

use std::fmt::Display;
use std::time::Duration;

use base64::Engine as _;
pub use ureq::http::Method;
use ureq::http::{HeaderMap, HeaderValue, StatusCode};

/// An agent with a whole-request timeout.
#[derive(Clone)]
pub struct Client(ureq::Agent);

impl Client {
    /// A client whose requests each take at most `timeout`.
    pub fn new(timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .allow_non_standard_methods(true)
            .build()
            .new_agent();
        Client(agent)
    }

    /// A request with `method`.
    pub fn request(&self, method: Method, url: impl Display) -> RequestBuilder {
        RequestBuilder {
            agent: self.0.clone(),
            request: ureq::http::Request::builder()
                .method(method)
                .uri(url.to_string()),
            body: None,
        }
    }

    /// A GET.
    pub fn get(&self, url: impl Display) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// A POST.
    pub fn post(&self, url: impl Display) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// A PUT.
    pub fn put(&self, url: impl Display) -> RequestBuilder {
        self.request(Method::PUT, url)
    }
}

/// A request being built.
pub struct RequestBuilder {
    agent: ureq::Agent,
    request: ureq::http::request::Builder,
    body: Option<Vec<u8>>,
}

impl RequestBuilder {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Display) -> Self {
        self.request = self.request.header(name, value.to_string());
        self
    }

    /// Sets the body (sent with a `Content-Length`).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Basic auth.
    pub fn basic_auth(self, user: impl Display, password: Option<impl Display>) -> Self {
        let password = password.map(|p| p.to_string()).unwrap_or_default();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap();
        value.set_sensitive(true);
        self.header_value("authorization", value)
    }

    fn header_value(mut self, name: &str, value: HeaderValue) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// Sends it and reads the whole answer.
    pub fn send(self) -> Result<Response, ureq::Error> {
        let answer = match self.body {
            Some(body) => self.agent.run(self.request.body(body)?)?,
            None => self.agent.run(self.request.body(())?)?,
        };
        let (parts, mut body) = answer.into_parts();
        let body = body.with_config().limit(u64::MAX).read_to_vec()?;
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// An answer, read whole.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Response {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(self) -> Result<String, std::convert::Infallible> {
        Ok(String::from_utf8_lossy(&self.body).into_owned())
    }
}
