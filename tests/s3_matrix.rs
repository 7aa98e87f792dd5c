//! The `deltasync` binary against real S3 servers (issue 13): moto, which honours
//! `If-Match` and `If-None-Match: *`, and s3rver, which accepts both and ignores them. For
//! each, the same checks as `webdav_matrix.rs` (shared in `support/matrix.rs`): the
//! two-device scenarios, `doctor`'s class and the one `init` recorded, refused credentials
//! (s3rver only: moto takes any), and 8 `deltasync` processes × 25 commits on one remote with
//! nothing lost. Endpoint and credentials reach the binary as AWS's variables
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`).
//!
//! A server that is not installed is skipped with a loud `SKIPPED:` line, except under
//! `CI=true`, where the test fails (`scripts/install-test-servers` installs both).

#[path = "support/matrix.rs"]
mod matrix;
mod support;

use deltasync_testservers::Kind;
use matrix::check_server;

/// Atomic, or non-atomic when the probe catches two racing winners (about 2 % of rounds).
#[test]
fn moto() {
    check_server(Kind::Moto);
}

/// Preconditions ignored (class none): every commit takes the lease and reads meta.json back.
#[test]
fn s3rver() {
    check_server(Kind::S3rver);
}

/// The AWS way of configuring, without AWS_* credentials in the environment: a profile of a
/// shared credentials file (AWS_SHARED_CREDENTIALS_FILE + AWS_PROFILE), the endpoint and
/// region from `[s3]` in deltasync.toml; a profile that is not there, and plain http to
/// another machine, are refused before any request, naming what to fix.
#[test]
fn moto_with_a_profile_and_the_endpoint_in_deltasync_toml() {
    use support::{EXIT_ERROR, EXIT_OK, Run, deltasync_in};
    let _one = matrix::one_at_a_time();
    let Some(server) = deltasync_testservers::start_or_skip(Kind::Moto) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n\
             [work]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            server.user(),
            server.password()
        ),
    )
    .unwrap();
    let dir = tmp.path().join("ws");
    let run = |profile: &str, endpoint: Option<&str>, args: &[&str]| {
        let mut c = deltasync_in(&dir, None, args);
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        ] {
            c.env_remove(var);
        }
        c.env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_PROFILE", profile);
        if let Some(e) = endpoint {
            c.env("AWS_ENDPOINT_URL", e);
        }
        Run::command(&mut c)
    };
    let url = format!("s3://{}/profiles", server.bucket());
    let init = [
        "init",
        "--remote",
        url.as_str(),
        "--device",
        "p",
        "--collection",
        "tasks=dir:tasks",
    ];
    run("work", Some(server.url()), &init).expect_ok("init with the work profile");

    // The endpoint moves to deltasync.toml; the environment no longer names it.
    let toml_path = dir.join("deltasync.toml");
    let mut text = std::fs::read_to_string(&toml_path).unwrap();
    assert!(!text.contains(server.password()), "{text}");
    text.push_str(&format!(
        "\n[s3]\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\n",
        server.url()
    ));
    std::fs::write(&toml_path, &text).unwrap();
    support::write_renamed(&dir.join("tasks/a.json"), &serde_json::json!({"t": 1}));
    let r = run("work", None, &["sync", "--json"]).expect_ok("sync with [s3] endpoint");
    assert!(r.json()["committed"].is_u64(), "{r}");
    let status = run("work", None, &["status"]).expect_ok("status");
    assert!(
        status.stdout.contains("credentials: AWS profile work in"),
        "{status}"
    );

    let r = run("nosuch", None, &["sync"]);
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(
        r.all().contains("AWS_PROFILE names the profile 'nosuch'"),
        "{r}"
    );

    text = text.replace(server.url(), "http://s3.example.invalid:9000/");
    std::fs::write(&toml_path, &text).unwrap();
    let r = run("work", None, &["sync"]);
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.all().contains("unencrypted"), "{r}");
    assert_ne!(r.code, Some(EXIT_OK));
}
