//! The Nextcloud stand-in, rule by rule (see `deltasync_testservers::Nextcloud`), through real
//! HTTP requests: helpers and the ETag, lock, trash and version rules here; logins, listings
//! and plain HTTP in `protocol.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use deltasync_testservers::{Nextcloud, NextcloudOptions};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
mod http_client;
use http_client::{Client, Method, RequestBuilder, Response};

mod protocol;

fn start(write_delay_ms: u64) -> Nextcloud {
    Nextcloud::start_with(NextcloudOptions {
        write_delay: Duration::from_millis(write_delay_ms),
        failed_login_delay: Duration::from_millis(300),
        ..NextcloudOptions::default()
    })
    .expect("start the Nextcloud stand-in")
}

fn client() -> Client {
    Client::new(Duration::from_secs(10))
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
