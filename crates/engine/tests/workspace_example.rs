//! The crate example `two_workspaces` run against a real WebDAV server (lighttpd): two
//! workspaces opened with `Workspace::open`, as the binary opens them, converge.

#[path = "../examples/two_workspaces.rs"]
mod example;

use deltasync_testservers::{Kind, start_or_skip};

#[test]
fn the_example_syncs_two_workspaces_over_webdav() {
    let Some(server) = start_or_skip(Kind::Lighttpd) else {
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let command = format!("printf %s {}", server.password());
    let task = example::run(
        server.url(),
        server.user(),
        Some(&command),
        a.path(),
        b.path(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let value: serde_json::Value = serde_json::from_str(&task).unwrap();
    assert_eq!(value["title"], "buy milk");
    // The phone took the verdict the laptop recorded instead of probing again.
    let phone = deltasync_engine::Workspace::open(
        b.path(),
        &deltasync_engine::workspace::ConfiguredCredentials,
    )
    .unwrap();
    assert!(phone.remote().recorded_verdict().unwrap().is_some());
}

/// A wrong password is refused by the server with a typed error (not temporary).
#[test]
fn a_wrong_password_is_refused() {
    let Some(server) = start_or_skip(Kind::Lighttpd) else {
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let e = example::run(
        server.url(),
        server.user(),
        Some("printf %s wrong"),
        a.path(),
        b.path(),
    )
    .unwrap_err();
    let e = e
        .downcast_ref::<deltasync_remote::RemoteError>()
        .map(|e| e.to_string())
        .unwrap_or_else(|| e.to_string());
    assert!(
        e.contains("401") || e.to_lowercase().contains("refused"),
        "{e}"
    );
}
