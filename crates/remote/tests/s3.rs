//! The S3 backend against real S3 servers started by `deltasync-testservers`: moto (honours
//! conditional writes) and s3rver (ignores them). For each: the probe's class, the shared
//! conformance suite (moto; s3rver's listing misses prefixes holding only deeper keys, see
//! its test), paging, batched deletes, size caps, refused credentials and a missing bucket. A server that is not installed is skipped with a loud `SKIPPED:` line, except under
//! `CI=true`, where it fails (install them with `scripts/install-test-servers`).

use std::sync::Mutex;

use deltasync_remote::{
    Capabilities, CasClass, GetResult, PutMode, Remote, RemoteError, S3, S3Credentials, S3Options,
    Secret, conformance,
};
use deltasync_testservers::{Kind, Server, start_or_skip};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn options(server: &Server, secret: &str) -> S3Options {
    S3Options {
        endpoint: Some(server.url().to_string()),
        region: Some("us-east-1".into()),
        credentials: Some(S3Credentials::new(server.user(), Secret::new(secret))),
        ..S3Options::default()
    }
}

fn open(server: &Server, prefix: &str) -> S3 {
    let url = format!("s3://{}/{prefix}", server.bucket());
    S3::open(&url, &options(server, server.password()))
        .unwrap_or_else(|e| panic!("{}: open {url}: {e}", server.kind()))
}

/// Prints the server's log when a check panics.
struct Guard<'a>(&'a Server);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("--- {} log (tail) ---\n{}", self.0.kind(), tail.join("\n"));
        }
    }
}

fn probe(server: &Server, s3: &S3, expected: &[CasClass]) -> deltasync_remote::ProbeReport {
    let report = s3
        .probe()
        .unwrap_or_else(|e| panic!("{}: probe failed: {e}", server.kind()));
    eprintln!("=== {} probe ({} ms)", server.kind(), report.elapsed_ms);
    for line in report.explain() {
        eprintln!("    {line}");
    }
    assert!(
        expected.contains(&report.class),
        "{}: probe says {} ({:?}), expected one of {expected:?}",
        server.kind(),
        report.class,
        report
    );
    assert!(
        report.s3 && report.mkcol_ok && report.delete_ok,
        "{report:?}"
    );
    assert_eq!(s3.capabilities(), report.capabilities());
    let left: Vec<String> = s3
        .list("")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .filter(|n| n.starts_with(".deltasync-probe"))
        .collect();
    assert!(left.is_empty(), "{}: probe left {left:?}", server.kind());
    report
}

fn conformance_suite(server: &Server, s3: &S3, caps: Capabilities) {
    let probed = s3.capabilities();
    s3.set_capabilities(caps);
    let report = conformance::run(s3);
    s3.set_capabilities(probed);
    let report = report.unwrap_or_else(|e| panic!("{}: conformance: {e}", server.kind()));
    eprintln!(
        "=== {} conformance: {} passed, {} skipped",
        server.kind(),
        report.passed.len(),
        report.skipped.len()
    );
    for s in &report.skipped {
        eprintln!("    skipped {}: {}", s.check, s.reason);
    }
    assert!(report.passed.len() >= 10, "{report:?}");
}

/// Lists in pages of `page` keys (moto: 2, to follow continuation tokens; s3rver answers 500
/// to a continued listing, so it lists in one page).
fn paging_batches_and_caps(server: &Server, page: usize) {
    let k = server.kind();
    let s3 = S3::open(
        &format!("s3://{}/paging", server.bucket()),
        &S3Options {
            list_page_keys: page,
            ..options(server, server.password())
        },
    )
    .unwrap();
    let names: Vec<String> = (0..5).map(|i| format!("d/f{i}.json")).collect();
    for n in &names {
        s3.put(n, b"{}", &PutMode::Overwrite).unwrap();
    }
    s3.put("d/sub/x.json", b"{}", &PutMode::Overwrite).unwrap();
    let listed: Vec<(String, bool)> = s3
        .list("d")
        .unwrap()
        .into_iter()
        .map(|o| (o.name, o.is_dir))
        .collect();
    let mut expected: Vec<(String, bool)> = (0..5).map(|i| (format!("f{i}.json"), false)).collect();
    expected.push(("sub".into(), true));
    assert_eq!(listed, expected, "{k}: paged listing");

    s3.delete_many(&names[..4]).unwrap();
    let left: Vec<String> = s3.list("d").unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(left, ["f4.json", "sub"], "{k}: after delete_many");
    s3.delete("d").unwrap();
    assert!(s3.list("d").unwrap().is_empty(), "{k}: folder delete");

    s3.put("big.json", &[b' '; 4096], &PutMode::Overwrite)
        .unwrap();
    let e = s3.get_max("big.json", None, 1000).unwrap_err();
    assert!(
        matches!(e, RemoteError::TooLarge { limit: 1000, .. }),
        "{k}: {e:?}"
    );
    assert!(matches!(
        s3.get_max("big.json", None, 4096).unwrap(),
        GetResult::Found { body, .. } if body.len() == 4096
    ));
    s3.delete("big.json").unwrap();
}

fn missing_bucket_is_named(server: &Server) {
    let s3 = S3::open(
        "s3://no-such-bucket-here/x",
        &options(server, server.password()),
    )
    .unwrap();
    let e = s3.put("a.json", b"{}", &PutMode::Overwrite).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("bucket 'no-such-bucket-here' does not exist"),
        "{}: {text}",
        server.kind()
    );
    assert!(!e.is_temporary());
}

#[test]
fn moto_honours_conditional_writes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(server) = start_or_skip(Kind::Moto) else {
        return;
    };
    let guard = Guard(&server);
    let s3 = open(&server, "deltasync tëst");
    // Under racing writers moto lets two win now and then (measured: ~2 % of rounds of 16):
    // a probe may or may not catch it.
    let report = probe(&server, &s3, &[CasClass::Atomic, CasClass::NonAtomic]);
    assert_eq!(report.if_match_missing_rejected, Some(true), "{report:?}");
    assert!(report.create_only_rejected, "{report:?}");
    conformance_suite(
        &server,
        &s3,
        Capabilities {
            cas: CasClass::NonAtomic,
            ..s3.capabilities()
        },
    );
    paging_batches_and_caps(&server, 2);
    missing_bucket_is_named(&server);
    drop(guard);
}

#[test]
fn s3rver_ignores_preconditions_and_is_classed_none() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(server) = start_or_skip(Kind::S3rver) else {
        return;
    };
    let guard = Guard(&server);
    let s3 = open(&server, "notes");
    let report = probe(&server, &s3, &[CasClass::None]);
    assert_eq!(report.unknown_if_match_rejected, Some(false), "{report:?}");
    // The backend refuses If-Match on a missing key itself on a server not proven atomic.
    let e = s3
        .put(
            "missing.json",
            b"{}",
            &PutMode::UpdateIfMatch(deltasync_remote::Etag("x".into())),
        )
        .unwrap_err();
    assert!(e.is_precondition_failed(), "{e:?}");
    assert!(s3.head("missing.json").unwrap().is_none());
    // No conformance suite here: s3rver 3.7 does not report a prefix that holds only deeper
    // keys when listing with a delimiter (its walk skips folders below a common prefix), which
    // the suite's nested-folder checks catch. deltasync's layout never needs that (meta.json
    // and snapshots at the root, deltas directly in deltas/gN/), and the CLI tests run on it.
    s3.put("n1/n2/k.json", b"{}", &PutMode::Overwrite).unwrap();
    s3.put("l/f.json", b"{}", &PutMode::Overwrite).unwrap();
    let top: Vec<String> = s3.list("").unwrap().into_iter().map(|o| o.name).collect();
    assert!(top.contains(&"l".to_string()), "{top:?}");
    assert!(
        !top.contains(&"n1".to_string()),
        "s3rver now lists n1/: run the conformance suite on it ({top:?})"
    );
    s3.delete("n1").unwrap();
    s3.delete("l").unwrap();
    paging_batches_and_caps(&server, 1000);
    missing_bucket_is_named(&server);

    // s3rver checks access key ids (not SigV4 signatures): an unknown key is refused, with
    // what to check, and neither the secret nor a signed URL is in the error.
    let wrong = S3::open(
        &format!("s3://{}/notes", server.bucket()),
        &S3Options {
            credentials: Some(S3Credentials::new(
                "AKIAWRONGKEY",
                Secret::new(server.password()),
            )),
            ..options(&server, server.password())
        },
    )
    .unwrap();
    let e = wrong.put("a.json", b"{}", &PutMode::Overwrite).unwrap_err();
    assert!(matches!(e, RemoteError::Denied { .. }), "{e:?}");
    assert!(!e.is_temporary());
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("InvalidAccessKeyId") && text.contains("AWS_ACCESS_KEY_ID"),
        "{text}"
    );
    assert!(
        !text.contains(server.password()) && !text.contains("X-Amz"),
        "{text}"
    );
    drop(guard);
}
