//! Unit tests against a scripted HTTP server on 127.0.0.1 (one canned answer per request).

use std::time::Duration;

use super::*;
use crate::HttpPolicy;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers each connection's request with the next canned response, then closes it.
struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn fake(responses: &[&str]) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/dav/",
        listener.local_addr().unwrap().port()
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let responses: Vec<String> = responses.iter().map(|s| s.to_string()).collect();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for response in responses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            // Not HTTP (a TLS handshake) or cut short: drop the connection.
            let Some(request) = read_request(&stream) else {
                continue;
            };
            seen2.lock().unwrap().push(request);
            let mut stream = stream;
            if response == "HANG" {
                std::thread::sleep(Duration::from_secs(3));
                continue;
            }
            // Headers are written with '\n' here; the body is left as it is.
            let (head, body) = response.split_once("\n\n").unwrap_or((&response, ""));
            let response = format!("{}\r\n\r\n{body}", head.replace('\n', "\r\n"));
            let _ = stream.write_all(response.as_bytes());
        }
    });
    Fake { url, seen }
}

fn read_request(stream: &std::net::TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

fn answer(status: &str, headers: &[&str], body: &str) -> String {
    let mut s = format!(
        "HTTP/1.1 {status}\nConnection: close\nContent-Length: {}\n",
        body.len()
    );
    for h in headers {
        s.push_str(h);
        s.push('\n');
    }
    s.push('\n');
    s.push_str(body);
    s
}

fn options() -> WebDavOptions {
    WebDavOptions {
        user: Some("alice".into()),
        password: Some(Secret::new("pa55-w0rd-xyz")),
        http: HttpPolicy {
            retry_base_delay: Duration::from_millis(1),
            ..HttpPolicy::default()
        },
        ..WebDavOptions::default()
    }
}

fn seen(f: &Fake) -> Vec<Seen> {
    f.seen.lock().unwrap().clone()
}

#[test]
fn get_sends_if_none_match_and_maps_statuses() {
    let f = fake(&[
        &answer("304 Not Modified", &["ETag: \"e1\""], ""),
        &answer("404 Not Found", &[], ""),
        &answer("200 OK", &["ETag: W/\"e2-gzip\""], "{}"),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    let e1 = Etag("e1".into());
    assert_eq!(
        dav.get("meta.json", Some(&e1)).unwrap(),
        GetResult::NotModified
    );
    assert_eq!(dav.get("a b/x.json", None).unwrap(), GetResult::NotFound);
    assert_eq!(
        dav.get("meta.json", None).unwrap(),
        GetResult::Found {
            body: b"{}".to_vec(),
            etag: Some(Etag("e2".into()))
        }
    );
    let s = seen(&f);
    assert_eq!(s[0].header("if-none-match"), Some("\"e1\""));
    assert_eq!(s[0].path, "/dav/meta.json");
    assert!(s[0].header("authorization").unwrap().starts_with("Basic "));
    assert_eq!(s[1].path, "/dav/a%20b/x.json");
    assert_eq!(s[2].header("if-none-match"), None);
}

#[test]
fn transient_failures_of_idempotent_requests_are_retried() {
    let f = fake(&[
        &answer("503 Service Unavailable", &[], ""),
        &answer("423 Locked", &[], ""),
        &answer("200 OK", &["ETag: \"x\""], "b"),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    assert!(matches!(
        dav.get("a", None).unwrap(),
        GetResult::Found { .. }
    ));
    assert_eq!(seen(&f).len(), 3);
}

#[test]
fn retries_are_bounded_and_reported() {
    let a = answer("502 Bad Gateway", &[], "");
    let f = fake(&[&a, &a, &a, &a, &a]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    let e = dav.head("a").unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert!(e.to_string().contains("tried 4 times"), "{e}");
    assert_eq!(seen(&f).len(), 4);
}

#[test]
fn a_failed_put_is_not_retried() {
    let f = fake(&[
        &answer("503 Service Unavailable", &[], ""),
        &answer("201 Created", &[], ""),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    let e = dav.put("a", b"x", &PutMode::Overwrite).unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert_eq!(seen(&f).len(), 1);
}

#[test]
fn retry_after_is_honoured_within_bounds() {
    let f = fake(&[
        &answer("429 Too Many Requests", &["Retry-After: 1"], ""),
        &answer("204 No Content", &[], ""),
        &answer("503 Service Unavailable", &["Retry-After: 3600"], ""),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    let t = Instant::now();
    dav.delete("a").unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let e = dav.delete("a").unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(e.to_string().contains("retry after 3600 s"), "{e}");
}

#[test]
fn refused_credentials_name_url_and_user_but_never_the_password() {
    let f = fake(&[&answer(
        "401 Unauthorized",
        &["WWW-Authenticate: Basic realm=\"x\""],
        "",
    )]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    let e = dav.get("meta.json", None).unwrap_err();
    match &e {
        RemoteError::Auth { url, user, status } => {
            assert_eq!(url, &format!("{}meta.json", f.url));
            assert_eq!(user, "alice");
            assert_eq!(*status, 401);
        }
        other => panic!("{other:?}"),
    }
    for text in [
        e.to_string(),
        format!("{e:?}"),
        format!("{dav:?}"),
        dav.describe(),
    ] {
        assert!(!text.contains("pa55-w0rd-xyz"), "{text}");
    }
    // Userinfo given in the URL never reaches describe() either.
    let dav = WebDav::open(
        &f.url.replace("http://", "http://alice@"),
        &WebDavOptions::default(),
    )
    .unwrap();
    assert!(!dav.describe().contains("alice"), "{}", dav.describe());
    assert_eq!(dav.user(), Some("alice"));
}

#[test]
fn conditional_puts_send_their_headers() {
    let f = fake(&[
        &answer("412 Precondition Failed", &[], ""),
        &answer("201 Created", &["ETag: \"n1\""], ""),
        &answer("201 Created", &["ETag: \"plain\"", "OC-ETag: \"oc\""], ""),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    // Probed atomic: no existence check before an If-Match PUT.
    dav.set_capabilities(Capabilities::default());
    let e = dav
        .put(
            "meta.json",
            b"{}",
            &PutMode::UpdateIfMatch(Etag("old".into())),
        )
        .unwrap_err();
    assert!(e.is_precondition_failed(), "{e}");
    assert_eq!(
        dav.put("d.json", b"{}", &PutMode::CreateOnly).unwrap(),
        Some(Etag("n1".into()))
    );
    assert_eq!(
        dav.put("x", b"{}", &PutMode::Overwrite).unwrap(),
        Some(Etag("oc".into()))
    );
    let s = seen(&f);
    assert_eq!(s[0].method, "PUT");
    assert_eq!(s[0].header("if-match"), Some("\"old\""));
    assert_eq!(s[1].header("if-none-match"), Some("*"));
    assert_eq!(s[1].body, b"{}");
    assert_eq!(s[2].header("if-match"), None);
    assert_eq!(s[2].header("if-none-match"), None);
    // Every PUT carries an mtime (Nextcloud and ownCloud take it; others ignore it).
    assert!(
        s[2].header("x-oc-mtime")
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "{:?}",
        s[2].header("x-oc-mtime")
    );
}

#[test]
fn a_put_answer_without_etag_is_followed_by_head() {
    let f = fake(&[
        &answer("201 Created", &[], ""),
        "HTTP/1.1 200 OK\nConnection: close\nContent-Length: 2\nETag: W/\"h1\"\n\n",
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    assert_eq!(
        dav.put("a.json", b"{}", &PutMode::Overwrite).unwrap(),
        Some(Etag("h1".into()))
    );
    let s = seen(&f);
    assert_eq!(s[1].method, "HEAD");
}

#[test]
fn a_head_showing_someone_elses_write_gives_no_etag() {
    let f = fake(&[
        &answer("204 No Content", &[], ""),
        "HTTP/1.1 200 OK\nConnection: close\nContent-Length: 99\nETag: \"theirs\"\n\n",
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    assert_eq!(dav.put("a.json", b"{}", &PutMode::Overwrite).unwrap(), None);
}

#[test]
fn missing_parents_are_created_and_the_put_retried_once() {
    let f = fake(&[
        &answer("409 Conflict", &[], ""),
        &answer("409 Conflict", &[], ""),
        &answer("201 Created", &[], ""),
        &answer("201 Created", &[], ""),
        &answer("201 Created", &["ETag: \"z\""], ""),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    assert_eq!(
        dav.put("d/g0/x.json", b"{}", &PutMode::CreateOnly).unwrap(),
        Some(Etag("z".into()))
    );
    let s: Vec<(String, String)> = seen(&f).into_iter().map(|s| (s.method, s.path)).collect();
    let expect = [
        ("PUT", "/dav/d/g0/x.json"),
        ("MKCOL", "/dav/d/g0/"),
        ("MKCOL", "/dav/d/"),
        ("MKCOL", "/dav/d/g0/"),
        ("PUT", "/dav/d/g0/x.json"),
    ];
    assert_eq!(
        s,
        expect.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
}

#[test]
fn nextcloud_gets_x_oc_mtime() {
    let f = fake(&[&answer("201 Created", &["OC-ETag: \"n\""], "")]);
    let url = f.url.replace("/dav/", "/remote.php/dav/files/alice/");
    let dav = WebDav::open(&url, &options()).unwrap();
    assert!(dav.is_nextcloud());
    dav.put("a", b"1", &PutMode::Overwrite).unwrap();
    let mtime: u64 = seen(&f)[0].header("x-oc-mtime").unwrap().parse().unwrap();
    assert!(mtime > 1_700_000_000);
}

#[test]
fn list_parses_propfind_and_makes_names_relative() {
    let body = r#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">
<d:response><d:href>/dav/deltas/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>http://127.0.0.1/dav/deltas/a%20b.json</d:href><d:propstat><d:prop><d:resourcetype/><d:getcontentlength>5</d:getcontentlength><d:getetag>"e"</d:getetag><d:getlastmodified>Sun, 22 Nov 2026 02:07:37 GMT</d:getlastmodified></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/dav/deltas/g1/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>"#;
    let f = fake(&[
        &answer("207 Multi-Status", &["Content-Type: application/xml"], body),
        &answer("404 Not Found", &[], ""),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    let list = dav.list("deltas").unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, "a b.json");
    assert_eq!(list[0].size, 5);
    assert_eq!(list[0].etag, Some(Etag("e".into())));
    assert_eq!(list[0].modified_ms, Some(1_795_313_257_000));
    assert!(!list[0].is_dir);
    assert_eq!(list[1].name, "g1");
    assert!(list[1].is_dir);
    assert!(dav.list("missing").unwrap().is_empty());
    let s = seen(&f);
    assert_eq!(s[0].method, "PROPFIND");
    assert_eq!(s[0].path, "/dav/deltas/");
    assert_eq!(s[0].header("depth"), Some("1"));
}

#[test]
fn timeouts_are_transient() {
    let f = fake(&["HANG"]);
    let base = options();
    let opts = WebDavOptions {
        http: HttpPolicy {
            timeout: Duration::from_millis(300),
            retries: 0,
            ..base.http.clone()
        },
        ..base
    };
    let dav = WebDav::open(&f.url, &opts).unwrap();
    let e = dav.get("a", None).unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[test]
fn tls_to_a_plain_http_server_is_a_permanent_explained_error() {
    let f = fake(&[&answer("200 OK", &[], "")]);
    let url = f.url.replace("http://", "https://");
    let dav = WebDav::open(&url, &options()).unwrap();
    let e = dav.get("a", None).unwrap_err();
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");
}

#[test]
fn move_sends_destination_and_overwrite() {
    let f = fake(&[
        &answer("201 Created", &[], ""),
        &answer("412 Precondition Failed", &[], ""),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    dav.move_to("a.json", "b c.json", true).unwrap();
    let e = dav.move_to("a.json", "b.json", false).unwrap_err();
    assert!(e.is_precondition_failed());
    let s = seen(&f);
    assert_eq!(s[0].method, "MOVE");
    assert_eq!(
        s[0].header("destination"),
        Some(&*format!("{}b%20c.json", f.url))
    );
    assert_eq!(s[0].header("overwrite"), Some("T"));
    assert_eq!(s[1].header("overwrite"), Some("F"));
}

#[test]
fn unprobed_capabilities_are_the_safe_ones() {
    let dav = WebDav::open("https://example.org/dav", &WebDavOptions::default()).unwrap();
    assert_eq!(dav.capabilities().cas, CasClass::NonAtomic);
    // Whatever is set, a WebDAV server's ETags may go stale (Nextcloud within a second), its
    // requests cross a network and it retries its own reads.
    let caps = Capabilities::default();
    dav.set_capabilities(caps.clone());
    let stale = Capabilities {
        stale_etags: true,
        networked: true,
        retries_reads: true,
        ..caps.clone()
    };
    assert_eq!(dav.capabilities(), stale);
    let dav = WebDav::open(
        "https://example.org/dav",
        &WebDavOptions {
            capabilities: Some(caps.clone()),
            ..WebDavOptions::default()
        },
    )
    .unwrap();
    assert_eq!(dav.capabilities(), stale);
}

#[test]
fn bad_paths_and_the_root_are_refused() {
    let dav = WebDav::open("https://example.org/dav", &WebDavOptions::default()).unwrap();
    assert!(matches!(
        dav.get("../x", None),
        Err(RemoteError::BadPath(_))
    ));
    assert!(matches!(dav.delete(""), Err(RemoteError::BadPath(_))));
    assert!(matches!(
        dav.put("/abs", b"", &PutMode::Overwrite),
        Err(RemoteError::BadPath(_))
    ));
}

#[test]
fn a_password_without_user_is_refused() {
    let e = WebDav::open(
        "https://example.org/dav",
        &WebDavOptions {
            password: Some(Secret::new("zzz")),
            ..WebDavOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("no user"), "{e}");
}

#[test]
fn if_match_on_a_missing_file_is_refused_before_writing_on_unproven_servers() {
    let f = fake(&[
        &answer("404 Not Found", &[], ""),
        "HTTP/1.1 200 OK\nConnection: close\nContent-Length: 2\nETag: \"e\"\n\n",
        &answer("204 No Content", &["ETag: \"f\""], ""),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    assert_eq!(dav.capabilities().cas, CasClass::NonAtomic);
    let mode = PutMode::UpdateIfMatch(Etag("e".into()));
    let e = dav.put("meta.json", b"{}", &mode).unwrap_err();
    assert!(e.is_precondition_failed(), "{e}");
    assert_eq!(
        dav.put("meta.json", b"{}", &mode).unwrap(),
        Some(Etag("f".into()))
    );
    let methods: Vec<String> = seen(&f).into_iter().map(|s| s.method).collect();
    assert_eq!(methods, ["HEAD", "HEAD", "PUT"]);
}

#[test]
fn a_redirected_put_keeps_its_method_body_and_credentials() {
    let f = fake(&[
        &answer("307 Temporary Redirect", &["Location: /dav/moved.json"], ""),
        &answer("201 Created", &["ETag: \"m1\""], ""),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    let etag = dav
        .put("a.json", b"{\"a\":1}", &PutMode::Overwrite)
        .unwrap();
    assert_eq!(etag, Some(Etag("m1".into())));
    let s = seen(&f);
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[1].method.as_str(), s[1].path.as_str()),
        ("PUT", "/dav/moved.json")
    );
    assert_eq!(s[1].body, b"{\"a\":1}");
    assert!(s[1].header("authorization").is_some());
    assert_eq!(s[1].header("authorization"), s[0].header("authorization"));
}

#[test]
fn a_redirect_to_the_folder_url_with_a_slash_is_not_followed() {
    let f = fake(&[
        &answer("301 Moved Permanently", &["Location: /dav/d/"], ""),
        &answer("404 Not Found", &[], ""),
    ]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    assert!(dav.head("d").unwrap().is_none());
    let s = seen(&f);
    assert_eq!(
        (s[0].method.as_str(), s[0].path.as_str()),
        ("HEAD", "/dav/d")
    );
    // The 301 itself said "a folder": PROPFIND asks about the same URL.
    assert_eq!(
        (s[1].method.as_str(), s[1].path.as_str()),
        ("PROPFIND", "/dav/d")
    );
}

#[test]
fn a_redirect_to_another_host_carries_no_credentials() {
    let other = fake(&[&answer("200 OK", &["ETag: \"o1\""], "{}")]);
    let location = format!("Location: {}x.json", other.url);
    let f = fake(&[&answer("302 Found", &[&location], "")]);
    let dav = WebDav::open(&f.url, &options()).unwrap();
    let got = dav.get("a.json", None).unwrap();
    assert!(
        matches!(got, GetResult::Found { ref body, .. } if body == b"{}"),
        "{got:?}"
    );
    assert!(seen(&f)[0].header("authorization").is_some());
    let s = seen(&other);
    assert_eq!(
        (s[0].method.as_str(), s[0].path.as_str()),
        ("GET", "/dav/x.json")
    );
    assert_eq!(s[0].header("authorization"), None);
}
