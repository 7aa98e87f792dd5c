//! The S3 servers the harness starts: moto (PyPI `moto[server]`, honours `If-Match` and
//! `If-None-Match: *`) and s3rver (npm, accepts both headers and ignores them). Each gets a
//! bucket named [`BUCKET`] before the test sees it.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{Kind, Setup};

/// The bucket every S3 test server has at start.
pub const BUCKET: &str = "deltasync-test";
/// s3rver's fixed credentials (it checks signatures against them).
pub(crate) const S3RVER_KEY: &str = "S3RVER";

/// `moto_server`: `DELTASYNC_MOTO`, else the venv scripts/install-test-servers makes.
pub(crate) fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DELTASYNC_MOTO") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    Some(PathBuf::from("/opt/deltasync-moto/bin/moto_server")).filter(|p| p.is_file())
}

/// s3rver's entry script: `DELTASYNC_S3RVER`, else where scripts/install-test-servers puts it.
pub(crate) fn s3rver_script() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DELTASYNC_S3RVER") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    Some(PathBuf::from(
        "/opt/deltasync-s3rver/node_modules/s3rver/bin/s3rver.js",
    ))
    .filter(|p| p.is_file())
}

pub(crate) fn moto(s: &Setup) -> std::io::Result<Command> {
    let bin = moto_binary().unwrap_or_else(|| PathBuf::from("moto_server"));
    let mut cmd = Command::new(bin);
    cmd.args(["-H", "127.0.0.1", "-p"])
        .arg(s.port.to_string())
        // moto keeps everything in memory; no data folder. Its region for new buckets:
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("MOTO_ALLOW_NONEXISTENT_REGION", "true");
    Ok(cmd)
}

pub(crate) fn s3rver(s: &Setup) -> std::io::Result<Command> {
    fs::create_dir_all(s.data)?;
    let script = s3rver_script().unwrap_or_else(|| PathBuf::from("s3rver.js"));
    let mut cmd = crate::program("node");
    cmd.arg(script)
        .arg("-d")
        .arg(s.data)
        .args(["-a", "127.0.0.1", "-p"])
        .arg(s.port.to_string())
        .args([
            "--silent",
            "--no-vhost-buckets",
            "--configure-bucket",
            BUCKET,
        ]);
    Ok(cmd)
}

/// Creates [`BUCKET`] on a server that needs no signature for it (moto).
pub(crate) fn create_bucket(kind: Kind, port: u16) -> std::io::Result<()> {
    if kind != Kind::Moto {
        return Ok(());
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other(format!(
            "creating bucket {BUCKET}: {}",
            answer.lines().next().unwrap_or("no answer")
        )));
    }
    Ok(())
}
