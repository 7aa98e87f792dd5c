//! The stand-in's logins (wrong password, Login Flow v2), PROPFIND, MKCOL/MOVE and raw HTTP.

use super::*;

#[test]
fn wrong_password_waits_then_401() {
    let nc = start(5);
    let c = client();
    let t = Instant::now();
    let r = c
        .request(Method::from_bytes(b"PROPFIND").unwrap(), nc.url())
        .basic_auth(nc.user(), Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(status(&r), 401);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(header(&r, "WWW-Authenticate"), "Basic realm=\"Nextcloud\"");
    let body = r.text().unwrap();
    assert!(!body.contains(nc.password()));
    let r = c.get(format!("{}x.json", nc.url())).send().unwrap();
    assert_eq!(status(&r), 401);
    let r = dav(&nc, &c, "PROPFIND", "").send().unwrap();
    assert_eq!(status(&r), 207);
    assert_eq!(nc.stats().unauthorized, 2);
}

#[test]
fn status_php_needs_no_login() {
    let nc = start(5);
    let r = client()
        .get(format!("{}/status.php", nc.base_url()))
        .send()
        .unwrap();
    assert_eq!(status(&r), 200);
    assert!(header(&r, "Content-Type").starts_with("application/json"));
    assert_eq!(
        r.text().unwrap(),
        r#"{"installed":true,"maintenance":false,"needsDbUpgrade":false,"version":"34.0.1.0","versionstring":"34.0.1","edition":"","productname":"Nextcloud","extendedSupport":false}"#
    );
}

#[test]
fn login_flow_v2_issues_a_working_app_password() {
    let nc = start(5);
    let c = client();
    let base = nc.base_url();
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with('/'));
    let start_flow = || {
        let r = c.post(format!("{base}/index.php/login/v2")).send().unwrap();
        assert_eq!(status(&r), 200);
        let raw = r.text().unwrap();
        assert!(
            raw.contains(r"http:\/\/127.0.0.1"),
            "PHP escapes slashes: {raw}"
        );
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let token = v["poll"]["token"].as_str().unwrap().to_string();
        let endpoint = v["poll"]["endpoint"].as_str().unwrap().to_string();
        let login = v["login"].as_str().unwrap().to_string();
        assert_eq!(token.len(), 64);
        assert_eq!(endpoint, format!("{base}/index.php/login/v2/poll"));
        assert!(login.starts_with(&format!("{base}/index.php/login/v2/flow/")));
        assert!(!login.ends_with(&token), "the login URL has its own token");
        (token, endpoint, login)
    };
    let poll = |endpoint: &str, token: &str| {
        c.post(endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
            .unwrap()
    };

    let (token, endpoint, login) = start_flow();
    assert_eq!(status(&poll(&endpoint, &token)), 404, "not granted yet");
    assert!(nc.approve_login(&login));
    let r = poll(&endpoint, &token);
    assert_eq!(status(&r), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(v["server"], base);
    assert_eq!(v["loginName"], "deltasync");
    let app = v["appPassword"].as_str().unwrap().to_string();
    assert_eq!(app.len(), 72);
    assert_eq!(status(&poll(&endpoint, &token)), 404, "the token is gone");
    assert!(!nc.approve_login(&login), "the flow is over");
    assert!(!nc.approve_login(&format!("{base}/index.php/login/v2/flow/nope")));
    assert_eq!(nc.app_passwords(), std::slice::from_ref(&app));

    // The app password logs in.
    let r = c
        .request(Method::from_bytes(b"PROPFIND").unwrap(), nc.url())
        .header("Depth", "0")
        .basic_auth(nc.user(), Some(&app))
        .send()
        .unwrap();
    assert_eq!(status(&r), 207);
    let r = c
        .put(format!("{}via-app.json", nc.url()))
        .basic_auth(nc.user(), Some(&app))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(status(&r), 201);

    // The user granting access in the browser: a GET of the login URL.
    let (token2, endpoint2, login2) = start_flow();
    let r = c.get(&login2).send().unwrap();
    assert_eq!(status(&r), 200);
    let r = poll(&endpoint2, &token2);
    assert_eq!(status(&r), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_ne!(v["appPassword"].as_str().unwrap(), app);
    assert_eq!(nc.app_passwords().len(), 2);
}

/// One `<d:response>` of a PROPFIND answer.
#[derive(Debug, Default, Clone)]
struct Item {
    href: String,
    etag: String,
    size: Option<u64>,
    modified: String,
    dir: bool,
    fileid: String,
}

fn parse_multistatus(xml: &str) -> Vec<Item> {
    let mut reader = NsReader::from_str(xml);
    let mut items = Vec::new();
    let mut item = Item::default();
    let mut text = String::new();
    loop {
        let (ns, event) = reader.read_resolved_event().expect("well-formed XML");
        let ns = match ns {
            ResolveResult::Bound(n) => n.0.to_string(),
            _ => String::new(),
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                text.clear();
                let name = e.local_name().as_ref().to_string();
                match (ns.as_str(), name.as_str()) {
                    ("DAV:", "response") => item = Item::default(),
                    ("DAV:", "collection") => item.dir = true,
                    _ => {}
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let name = r.xml10_content();
                text.push_str(quick_xml::escape::resolve_predefined_entity(&name).unwrap());
            }
            Event::End(ref e) => {
                let name = e.local_name().as_ref().to_string();
                let t = std::mem::take(&mut text);
                match (ns.as_str(), name.as_str()) {
                    ("DAV:", "href") => item.href = t,
                    ("DAV:", "getetag") => item.etag = t,
                    ("DAV:", "getcontentlength") => item.size = Some(t.parse().unwrap()),
                    ("DAV:", "getlastmodified") => item.modified = t,
                    ("http://owncloud.org/ns", "fileid") => item.fileid = t,
                    ("DAV:", "response") => items.push(item.clone()),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    items
}

#[test]
fn propfind_lists_odd_names_with_encoded_hrefs() {
    let nc = start(5);
    let c = client();
    let names = [
        "a b.json",
        "plus+sign.json",
        "100%.json",
        "R&D.json",
        "hash#1.json",
        "why?.json",
        "ünïcødé €.json",
    ];
    assert_eq!(
        status(&dav(&nc, &c, "MKCOL", "sub%20folder").send().unwrap()),
        201
    );
    for n in names {
        let r = put(&nc, &c, &enc(n), n);
        assert_eq!(status(&r), 201, "{n}");
        assert_eq!(std::fs::read_to_string(nc.data_dir().join(n)).unwrap(), n);
    }
    let r = dav(&nc, &c, "PROPFIND", "")
        .header("Depth", "1")
        .body(r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>"#)
        .send()
        .unwrap();
    assert_eq!(status(&r), 207);
    let items = parse_multistatus(&r.text().unwrap());
    assert_eq!(items.len(), 1 + names.len() + 1, "{items:#?}");
    let prefix = format!("/remote.php/dav/files/{}/", nc.user());
    assert_eq!(items[0].href, prefix);
    assert!(items[0].dir);
    for it in &items {
        assert!(it.href.starts_with(&prefix), "{it:?}");
        assert!(it.etag.starts_with('"') && it.etag.ends_with('"'), "{it:?}");
        assert!(it.modified.ends_with(" GMT"), "{it:?}");
        assert!(it.fileid.parse::<u64>().is_ok(), "{it:?}");
        assert!(
            it.href
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"?#&+ ".contains(&b)),
            "href is percent-encoded: {}",
            it.href
        );
    }
    let folder = items.iter().find(|i| i.dir && i.href != prefix).unwrap();
    assert_eq!(folder.href, format!("{prefix}sub%20folder/"));
    for n in names {
        let it = items
            .iter()
            .find(|i| {
                percent_decode_str(&i.href[prefix.len()..])
                    .decode_utf8()
                    .unwrap()
                    == n
            })
            .unwrap_or_else(|| panic!("{n} listed"));
        assert!(!it.dir);
        assert_eq!(it.size, Some(n.len() as u64));
        let head = dav(&nc, &c, "HEAD", &enc(n)).send().unwrap();
        assert_eq!(header(&head, "ETag"), it.etag, "{n}");
    }
    let r = dav(&nc, &c, "PROPFIND", &enc("why?.json"))
        .header("Depth", "0")
        .send()
        .unwrap();
    let items = parse_multistatus(&r.text().unwrap());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].href, format!("{prefix}why%3F.json"));
    let r = dav(&nc, &c, "PROPFIND", "missing/").send().unwrap();
    assert_eq!(status(&r), 404);
}

#[test]
fn mkcol_move_and_missing_parents() {
    let nc = start(5);
    let c = client();
    assert_eq!(status(&dav(&nc, &c, "MKCOL", "a").send().unwrap()), 201);
    assert_eq!(status(&dav(&nc, &c, "MKCOL", "a").send().unwrap()), 405);
    assert_eq!(status(&dav(&nc, &c, "MKCOL", "x/y").send().unwrap()), 409);
    // A folder has no GET; its HEAD is an empty 200 without an ETag, as sabre/dav answers.
    let r = dav(&nc, &c, "HEAD", "a/").send().unwrap();
    assert_eq!(status(&r), 200);
    assert!(header(&r, "ETag").is_empty());
    assert_eq!(status(&dav(&nc, &c, "GET", "a/").send().unwrap()), 501);
    assert_eq!(status(&put(&nc, &c, "x/y.json", "{}")), 409);
    let r = put(&nc, &c, "a/f.json", "f");
    let id = header(&r, "OC-FileId");
    let etag = header(&r, "ETag");
    let mv = |from: &str, to: &str, overwrite: &str| {
        dav(&nc, &c, "MOVE", from)
            .header("Destination", format!("{}{to}", nc.url()))
            .header("Overwrite", overwrite)
            .send()
            .unwrap()
    };
    assert_eq!(status(&mv("a/f.json", "a/g%20g.json", "T")), 201);
    assert!(nc.data_dir().join("a/g g.json").exists());
    assert!(!nc.data_dir().join("a/f.json").exists());
    let r = dav(&nc, &c, "HEAD", "a/g%20g.json").send().unwrap();
    assert_eq!(header(&r, "OC-FileId"), id, "the fileid moves along");
    assert_eq!(header(&r, "ETag"), etag);
    put(&nc, &c, "a/h.json", "h");
    assert_eq!(status(&mv("a/g%20g.json", "a/h.json", "F")), 412);
    assert_eq!(status(&mv("a/g%20g.json", "a/h.json", "T")), 204);
    assert_eq!(
        std::fs::read_to_string(nc.data_dir().join("a/h.json")).unwrap(),
        "f"
    );
    assert_eq!(
        nc.trash(),
        ["a/h.json"],
        "the overwritten target went to the trash"
    );
    assert_eq!(status(&mv("a/nothing.json", "a/z.json", "T")), 404);
    assert_eq!(status(&mv("a/h.json", "nowhere/h.json", "T")), 409);
    // A folder moves with its contents.
    assert_eq!(status(&mv("a", "b", "F")), 201);
    assert_eq!(
        std::fs::read_to_string(nc.data_dir().join("b/h.json")).unwrap(),
        "f"
    );
    let s = nc.stats();
    assert_eq!(s.requests, 15);
    assert_eq!(s.by_status.values().sum::<u64>(), s.requests);
}

#[test]
fn raw_http_keep_alive_chunked_bodies_and_expect_continue() {
    use std::io::{BufRead, BufReader, Read, Write};
    let nc = start(5);
    let addr = nc.base_url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = {
        // base64 of "deltasync:<password>", by hand to need no crate.
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let raw = format!("{}:{}", nc.user(), nc.password()).into_bytes();
        let mut out = String::new();
        for chunk in raw.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let path = "/remote.php/dav/files/deltasync/chunked.json";
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    r.read_line(&mut line).unwrap();
    s.write_all(b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
        .unwrap();
    let read_answer = |r: &mut BufReader<std::net::TcpStream>| {
        let mut head = Vec::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if l == "\r\n" {
                break;
            }
            head.push(l.trim_end().to_string());
        }
        let len: usize = head
            .iter()
            .find_map(|h| h.strip_prefix("Content-Length: "))
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        (head, String::from_utf8(body).unwrap())
    };
    let (head, _) = read_answer(&mut r);
    assert_eq!(head[0], "HTTP/1.1 201 Created");
    assert!(
        head.contains(&"Connection: keep-alive".to_string()),
        "{head:?}"
    );
    assert_eq!(
        std::fs::read_to_string(nc.data_dir().join("chunked.json")).unwrap(),
        "{\"a\":1}"
    );
    // The same connection: a GET that asks to close it.
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (head, body) = read_answer(&mut r);
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert!(head.contains(&"Connection: close".to_string()), "{head:?}");
    assert!(head.contains(&"Server: nginx".to_string()), "{head:?}");
    assert_eq!(body, "{\"a\":1}");
    let mut rest = Vec::new();
    assert_eq!(
        r.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the answer"
    );
}
