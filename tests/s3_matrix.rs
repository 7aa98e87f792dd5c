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
