//! The remotes the benchmark runs against: `RemoteKind`, opened fresh and probed for each run.

use super::*;

/// A kind of remote the benchmark can run against. To add a backend (e.g. a WebDAV server),
/// add a variant, its name in [`RemoteKind::parse`], and a case in [`open_remote`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteKind {
    /// [`LocalFolder`]: a folder on the local disk, next to the workspaces.
    Folder,
    /// lighttpd's mod_webdav on 127.0.0.1, started for the run by `deltasync-testservers`
    /// (`scripts/install-test-servers` installs it), through the WebDAV backend with basic auth.
    Lighttpd,
    /// moto's S3 server (PyPI `moto[server]`) on 127.0.0.1, started for the run, through the S3
    /// backend (SigV4, path-style addressing).
    Moto,
}

impl RemoteKind {
    /// Parses the `--remote` name.
    pub(crate) fn parse(name: &str) -> Result<Self> {
        match name {
            "folder" => Ok(RemoteKind::Folder),
            "lighttpd" => Ok(RemoteKind::Lighttpd),
            "moto" => Ok(RemoteKind::Moto),
            other => bail!("unknown remote kind '{other}' (known: folder, lighttpd, moto)"),
        }
    }

    /// The name in the tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            RemoteKind::Folder => "folder",
            RemoteKind::Lighttpd => "lighttpd",
            RemoteKind::Moto => "moto (S3)",
        }
    }
}

/// A remote opened for one benchmark run.
pub(crate) struct OpenedRemote {
    /// The backend.
    pub(crate) remote: Arc<dyn Remote>,
    /// What `deltasync.toml` would say (`remote = …`).
    pub(crate) url: String,
    /// The server probe's report, as `deltasync init` records it in meta.json (`server`).
    pub(crate) server: Value,
    /// The WebDAV server process, stopped when the run is over.
    pub(crate) _server: Option<deltasync_testservers::Server>,
}

/// Opens a fresh, empty remote of `kind` for one size and probes it as `deltasync init` does
/// (the probe cleans up after itself). `scratch` is a folder private to this run (removed
/// afterwards); a backend that lives elsewhere (a server) should use a fresh sub-path named
/// after `name` instead.
pub(crate) fn open_remote(kind: RemoteKind, scratch: &Path, name: &str) -> Result<OpenedRemote> {
    match kind {
        RemoteKind::Folder => {
            let dir = scratch.join(name);
            let remote = LocalFolder::new(&dir)
                .with_context(|| format!("opening the folder remote {}", dir.display()))?;
            let server = deltasync_remote::probe(&remote)?.summary_json();
            Ok(OpenedRemote {
                remote: Arc::new(remote),
                url: dir.display().to_string(),
                server,
                _server: None,
            })
        }
        RemoteKind::Lighttpd => {
            let server =
                deltasync_testservers::Server::start(deltasync_testservers::Kind::Lighttpd)
                    .map_err(|e| anyhow::anyhow!("starting lighttpd: {e}"))?;
            let url = format!("{}/{name}/", server.url().trim_end_matches('/'));
            let options = deltasync_remote::WebDavOptions::with_credentials(
                server.user(),
                deltasync_remote::Secret::new(server.password()),
            );
            let dav = deltasync_remote::WebDav::open(&url, &options)?;
            let report = dav.probe()?;
            Ok(OpenedRemote {
                remote: Arc::new(dav),
                url,
                server: report.summary_json(),
                _server: Some(server),
            })
        }
        RemoteKind::Moto => {
            let server = deltasync_testservers::Server::start(deltasync_testservers::Kind::Moto)
                .map_err(|e| anyhow::anyhow!("starting moto: {e}"))?;
            let url = format!("s3://{}/{name}", server.bucket());
            let options = deltasync_remote::S3Options {
                endpoint: Some(server.url().to_string()),
                region: Some("us-east-1".into()),
                credentials: Some(deltasync_remote::S3Credentials::new(
                    server.user(),
                    deltasync_remote::Secret::new(server.password()),
                )),
                ..deltasync_remote::S3Options::default()
            };
            let s3 = deltasync_remote::S3::open(&url, &options)?;
            let report = deltasync_remote::probe_s3(&s3)?;
            s3.set_capabilities(report.capabilities());
            Ok(OpenedRemote {
                remote: Arc::new(s3),
                url,
                server: report.summary_json(),
                _server: Some(server),
            })
        }
    }
}
