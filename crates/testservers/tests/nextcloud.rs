//! The Nextcloud stand-in, rule by rule (see `deltasync_testservers::Nextcloud`), through real
//! HTTP requests.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use deltasync_testservers::{Nextcloud, NextcloudOptions};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder, Response};

fn start(write_delay_ms: u64) -> Nextcloud {
    Nextcloud::start_with(NextcloudOptions {
        write_delay: Duration::from_millis(write_delay_ms),
        failed_login_delay: Duration::from_millis(300),
        ..NextcloudOptions::default()
    })
    .expect("start the Nextcloud stand-in")
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A request to `path` below the user's root (`path` already percent-encoded), with the login.
fn dav(nc: &Nextcloud, c: &Client, method: &str, path: &str) -> RequestBuilder {
    c.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{path}", nc.url()),
    )
    .basic_auth(nc.user(), Some(nc.password()))
}

fn put(nc: &Nextcloud, c: &Client, path: &str, body: &str) -> Response {
    dav(nc, c, "PUT", path)
        .body(body.to_string())
        .send()
        .unwrap()
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn status(r: &Response) -> u16 {
    r.status().as_u16()
}

fn enc(name: &str) -> String {
    utf8_percent_encode(name, NON_ALPHANUMERIC).to_string()
}

#[test]
fn same_second_rewrite_keeps_the_etag_and_304_hides_the_new_content() {
    let nc = start(5);
    let c = client();
    let t = "1700000000";
    let r = dav(&nc, &c, "PUT", "f.json")
        .header("X-OC-MTime", t)
        .body("one")
        .send()
        .unwrap();
    assert_eq!(status(&r), 201);
    assert_eq!(header(&r, "X-OC-MTime"), "accepted");
    let e1 = header(&r, "ETag");
    assert_eq!(e1.len(), 15, "13 hex digits in quotes: {e1}");
    assert_eq!(header(&r, "Last-Modified"), "Tue, 14 Nov 2023 22:13:20 GMT");

    // Same mtime, other size and content: the ETag is kept.
    let r = dav(&nc, &c, "PUT", "f.json")
        .header("X-OC-MTime", t)
        .body("two, longer")
        .send()
        .unwrap();
    assert_eq!(status(&r), 204);
    assert_eq!(header(&r, "ETag"), e1);
    let r = dav(&nc, &c, "GET", "f.json")
        .header("If-None-Match", &e1)
        .send()
        .unwrap();
    assert_eq!(status(&r), 304, "304 over changed content");
    assert_eq!(header(&r, "ETag"), e1);
    let r = dav(&nc, &c, "GET", "f.json").send().unwrap();
    assert_eq!(header(&r, "ETag"), e1);
    assert_eq!(r.text().unwrap(), "two, longer");
    let s = nc.stats();
    assert_eq!((s.not_modified, s.stale_304), (1, 1));

    // A strictly later mtime: a new ETag, and the old one gets 200.
    let r = dav(&nc, &c, "PUT", "f.json")
        .header("X-OC-MTime", "1700000001")
        .body("three")
        .send()
        .unwrap();
    assert_eq!(status(&r), 204);
    let e2 = header(&r, "ETag");
    assert_ne!(e2, e1);
    let r = dav(&nc, &c, "GET", "f.json")
        .header("If-None-Match", &e1)
        .send()
        .unwrap();
    assert_eq!(status(&r), 200);
    assert_eq!(r.text().unwrap(), "three");
    let r = dav(&nc, &c, "GET", "f.json")
        .header("If-None-Match", &e2)
        .send()
        .unwrap();
    assert_eq!(status(&r), 304);
    assert_eq!(
        nc.stats().stale_304,
        1,
        "a 304 for the current content is not stale"
    );
    let mtime = std::fs::metadata(nc.data_dir().join("f.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, UNIX_EPOCH + Duration::from_secs(1_700_000_001));
}

#[test]
fn stale_if_match_succeeds_within_one_second() {
    let nc = start(5);
    let c = client();
    // Three writes within one wall-clock second (tried again if a second boundary fell inside).
    for attempt in 0.. {
        while SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_millis()
            > 100
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let name = format!("m{attempt}.json");
        let r = put(&nc, &c, &name, "v1");
        assert_eq!(status(&r), 201);
        let e1 = header(&r, "ETag");
        let r = dav(&nc, &c, "PUT", &name)
            .header("If-Match", &e1)
            .body("v2, other length")
            .send()
            .unwrap();
        assert_eq!(status(&r), 204);
        let e2 = header(&r, "ETag");
        // e1 is stale now (the content changed), but still cached when no second passed.
        let r = dav(&nc, &c, "PUT", &name)
            .header("If-Match", &e1)
            .body("v3")
            .send()
            .unwrap();
        let s = status(&r);
        if e2 != e1 && attempt < 3 {
            continue; // crossed a second boundary
        }
        assert_eq!(e2, e1, "same-second rewrite keeps the ETag");
        assert_eq!(
            s, 204,
            "a stale If-Match succeeds after a same-second rewrite"
        );
        assert!(header(&r, "X-OC-MTime").is_empty(), "no X-OC-MTime sent");
        let data = std::fs::read_to_string(nc.data_dir().join(&name)).unwrap();
        assert_eq!(data, "v3");
        // A made-up ETag, a missing file, and If-None-Match: * on an existing file: 412.
        let r = dav(&nc, &c, "PUT", &name)
            .header("If-Match", "\"0123456789abc\"")
            .body("x")
            .send()
            .unwrap();
        assert_eq!(status(&r), 412);
        let r = dav(&nc, &c, "PUT", "missing.json")
            .header("If-Match", &e1)
            .body("x")
            .send()
            .unwrap();
        assert_eq!(status(&r), 412);
        let r = dav(&nc, &c, "PUT", &name)
            .header("If-None-Match", "*")
            .body("x")
            .send()
            .unwrap();
        assert_eq!(status(&r), 412);
        assert!(r.text().unwrap().contains("PreconditionFailed"));
        break;
    }
}

#[test]
fn file_answers_carry_etag_oc_etag_fileid_and_last_modified() {
    let nc = start(5);
    let c = client();
    let r = put(&nc, &c, "a.json", "{}");
    let id = header(&r, "OC-FileId");
    assert_eq!(header(&r, "ETag"), header(&r, "OC-ETag"));
    let (digits, instance) = id.split_at(8);
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert!(instance.starts_with("oc") && instance.len() > 2, "{id}");
    for method in ["GET", "HEAD"] {
        let r = dav(&nc, &c, method, "a.json").send().unwrap();
        assert_eq!(status(&r), 200);
        assert_eq!(header(&r, "OC-FileId"), id, "{method}");
        assert!(!header(&r, "ETag").is_empty(), "{method}");
        assert_eq!(header(&r, "ETag"), header(&r, "OC-ETag"), "{method}");
        assert!(header(&r, "Last-Modified").ends_with(" GMT"), "{method}");
    }
    let r = dav(&nc, &c, "HEAD", "a.json").send().unwrap();
    assert_eq!(header(&r, "Content-Length"), "2");
    // The fileid stays with the path across rewrites.
    let r = dav(&nc, &c, "PUT", "a.json")
        .header("X-OC-MTime", "1600000000")
        .body("{\"x\":1}")
        .send()
        .unwrap();
    assert_eq!(header(&r, "OC-FileId"), id);
    let r = put(&nc, &c, "b.json", "{}");
    assert_ne!(header(&r, "OC-FileId"), id);
    let r = dav(&nc, &c, "GET", "nothing.json").send().unwrap();
    assert_eq!(status(&r), 404);
}

#[test]
fn racing_if_match_writers_can_both_win_and_losers_mostly_get_423() {
    let nc = Arc::new(start(30));
    let mut winners = Vec::new();
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    let clients: Vec<Client> = (0..8).map(|_| client()).collect();
    for round in 0..20 {
        let name = "race.json";
        let r = put(&nc, &clients[0], name, &format!("base {round}"));
        assert!(matches!(status(&r), 201 | 204));
        let etag = header(&r, "ETag");
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (nc, c, barrier, etag) = (nc.clone(), c.clone(), barrier.clone(), etag.clone());
                std::thread::spawn(move || {
                    // Warm the connection so that the race starts at the barrier.
                    dav(&nc, &c, "HEAD", name).send().unwrap();
                    barrier.wait();
                    let r = dav(&nc, &c, "PUT", name)
                        .header("If-Match", etag)
                        .body(format!("writer {i} round {round}"))
                        .send()
                        .unwrap();
                    status(&r)
                })
            })
            .collect();
        let got: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for s in &got {
            assert!(matches!(s, 204 | 412 | 423), "{got:?}");
            *statuses.entry(*s).or_default() += 1;
        }
        let won = got.iter().filter(|&&s| s == 204).count();
        assert!(won >= 1, "round {round}: nobody won: {got:?}");
        winners.push(won);
        if won >= 2 && statuses.contains_key(&423) {
            break;
        }
    }
    println!("8 racing If-Match writers: winners per round {winners:?}; statuses {statuses:?}");
    assert!(
        statuses.get(&423).copied().unwrap_or(0) > 0,
        "a loser got 423"
    );
    assert!(
        winners.iter().any(|&w| w >= 2),
        "two writers with one ETag both won in some round: {winners:?}"
    );
    assert!(nc.stats().locked > 0);
}

#[test]
fn readers_get_423_while_a_write_holds_the_lock() {
    let nc = Arc::new(start(800));
    let c = client();
    assert_eq!(status(&put(&nc, &c, "r.json", "old")), 201);
    let writer = {
        let nc = nc.clone();
        std::thread::spawn(move || status(&put(&nc, &client(), "r.json", "new")))
    };
    let (mut get_423, mut head_423) = (0, 0);
    // The write may complete a moment before its thread ends: a reader then
    // sees the new content, and never the old one again, never a mix.
    let mut seen_new = false;
    while !writer.is_finished() {
        let r = dav(&nc, &c, "GET", "r.json").send().unwrap();
        match status(&r) {
            423 => {
                get_423 += 1;
                assert!(r.text().unwrap().contains("FileLocked"));
            }
            200 => match r.text().unwrap().as_str() {
                "old" => assert!(!seen_new, "the old content came back after the new"),
                "new" => seen_new = true,
                other => panic!("GET during a write gave {other:?}"),
            },
            s => panic!("GET during a write: {s}"),
        }
        let r = dav(&nc, &c, "HEAD", "r.json").send().unwrap();
        match status(&r) {
            423 => head_423 += 1,
            200 => {}
            s => panic!("HEAD during a write: {s}"),
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(writer.join().unwrap(), 204);
    assert!(
        get_423 > 0 && head_423 > 0,
        "GET {get_423}, HEAD {head_423}"
    );
    let r = dav(&nc, &c, "GET", "r.json").send().unwrap();
    assert_eq!(r.text().unwrap(), "new");
}

#[test]
fn racing_creators_that_meet_the_lock_get_403_404_or_423() {
    let nc = Arc::new(start(20));
    let clients: Vec<Client> = (0..8).map(|_| client()).collect();
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    for round in 0..12 {
        let name = format!("new-{round}.json");
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (nc, c, barrier, name) = (nc.clone(), c.clone(), barrier.clone(), name.clone());
                std::thread::spawn(move || {
                    dav(&nc, &c, "PROPFIND", "")
                        .header("Depth", "0")
                        .send()
                        .unwrap();
                    barrier.wait();
                    let r = dav(&nc, &c, "PUT", &name)
                        .header("If-None-Match", "*")
                        .body(format!("creator {i}"))
                        .send()
                        .unwrap();
                    status(&r)
                })
            })
            .collect();
        let got: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(got.contains(&201), "round {round}: {got:?}");
        for s in got {
            assert!(matches!(s, 201 | 403 | 404 | 412 | 423), "{s}");
            *statuses.entry(s).or_default() += 1;
        }
    }
    println!("8 racing creators, 12 rounds: statuses {statuses:?}");
    let kinds = [403, 404, 423]
        .iter()
        .filter(|s| statuses.contains_key(s))
        .count();
    assert!(kinds >= 2, "creators meeting the lock: {statuses:?}");
}

#[test]
fn cold_cache_puts_answer_404_and_store_nothing() {
    let nc = start(5);
    let c = client();
    nc.cold_cache(2);
    assert_eq!(status(&put(&nc, &c, "d1.json", "x")), 404);
    assert_eq!(status(&put(&nc, &c, "d2.json", "x")), 404);
    assert!(!nc.data_dir().join("d1.json").exists());
    assert!(!nc.data_dir().join("d2.json").exists());
    assert_eq!(status(&put(&nc, &c, "d1.json", "x")), 201);
    assert!(nc.data_dir().join("d1.json").exists());
    // A PUT into a missing folder is a 409 as ever, and does not use up the cold cache.
    nc.cold_cache(1);
    assert_eq!(status(&put(&nc, &c, "deltas/d3.json", "x")), 409);
    assert_eq!(
        status(&dav(&nc, &c, "MKCOL", "deltas").send().unwrap()),
        201
    );
    assert_eq!(status(&put(&nc, &c, "deltas/d3.json", "x")), 404);
    assert_eq!(status(&put(&nc, &c, "deltas/d3.json", "x")), 201);
}

#[test]
fn delete_goes_to_the_trash_bin_unless_skipped() {
    let nc = start(5);
    let c = client();
    assert_eq!(status(&dav(&nc, &c, "MKCOL", "dir").send().unwrap()), 201);
    put(&nc, &c, "dir/x.json", "x");
    put(&nc, &c, "dir/y.json", "y");
    put(&nc, &c, "dir/z.json", "z");
    assert_eq!(
        status(&dav(&nc, &c, "DELETE", "dir/x.json").send().unwrap()),
        204
    );
    assert!(!nc.data_dir().join("dir/x.json").exists());
    assert_eq!(nc.trash(), ["dir/x.json"]);
    let r = dav(&nc, &c, "DELETE", "dir/y.json")
        .header("X-NC-Skip-Trashbin", "true")
        .send()
        .unwrap();
    assert_eq!(status(&r), 204);
    assert!(!nc.data_dir().join("dir/y.json").exists());
    assert_eq!(nc.trash(), ["dir/x.json"]);
    assert_eq!(status(&dav(&nc, &c, "DELETE", "dir").send().unwrap()), 204);
    assert!(!nc.data_dir().join("dir").exists());
    assert_eq!(nc.trash(), ["dir/x.json", "dir"]);
    assert_eq!(status(&dav(&nc, &c, "DELETE", "dir").send().unwrap()), 404);
    assert_eq!(std::fs::read_dir(nc.data_dir()).unwrap().count(), 0);
    let s = nc.stats();
    assert_eq!((s.deletes_to_trash, s.deletes_skipping_trash), (2, 1));
    assert_eq!(s.by_status.get(&404), Some(&1));
}

#[test]
fn every_overwrite_keeps_a_version() {
    let nc = start(5);
    let c = client();
    put(&nc, &c, "meta.json", &"a".repeat(10));
    assert_eq!(nc.versions(), (0, 0));
    put(&nc, &c, "meta.json", &"b".repeat(20));
    put(&nc, &c, "meta.json", &"c".repeat(30));
    assert_eq!(nc.versions(), (2, 30));
    let r = dav(&nc, &c, "GET", "meta.json").send().unwrap();
    assert_eq!(r.text().unwrap(), "c".repeat(30));
}

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
