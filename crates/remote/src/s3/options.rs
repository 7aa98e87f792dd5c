//! How to reach an S3 bucket: `s3://BUCKET/PREFIX` URLs, endpoint, region, addressing style,
//! and credentials (environment, `~/.aws/credentials` profiles). `Debug` never shows secrets.

use std::path::Path;

use url::{Host, Url};

use crate::http::HttpPolicy;
use crate::webdav::is_loopback;
use crate::{Capabilities, RemoteError, Secret};

/// Credentials of an S3 bucket. `Debug` shows the access key id only.
#[derive(Clone)]
pub struct S3Credentials {
    /// The access key id (not secret: it names the key, as a user name does).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl S3Credentials {
    /// Credentials given directly.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: Secret) -> S3Credentials {
        S3Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
        }
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` as `var` reads them
    /// (pass `|v| std::env::var(v).ok()`); `None` unless both of the first two are set and not
    /// blank.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<S3Credentials> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        Some(S3Credentials {
            access_key_id: get("AWS_ACCESS_KEY_ID")?,
            secret_access_key: Secret::new(get("AWS_SECRET_ACCESS_KEY")?),
            session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
        })
    }

    /// The profile `profile` of an AWS shared credentials file (`~/.aws/credentials`, INI:
    /// `[name]` sections with `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_session_token`); `Ok(None)` when the file or the profile is missing.
    pub fn from_profile_file(
        path: &Path,
        profile: &str,
    ) -> Result<Option<S3Credentials>, RemoteError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(RemoteError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Ok(parse_profile(&text, profile))
    }
}

/// The keys of one `[profile]` section of an AWS credentials file.
fn parse_profile(text: &str, profile: &str) -> Option<S3Credentials> {
    let mut in_section = false;
    let (mut key, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            in_section = name == profile || name == format!("profile {profile}");
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => key = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            "aws_session_token" => token = Some(v),
            _ => {}
        }
    }
    Some(S3Credentials {
        access_key_id: key.filter(|k| !k.is_empty())?,
        secret_access_key: Secret::new(secret.filter(|s| !s.is_empty())?),
        session_token: token.filter(|t| !t.is_empty()).map(Secret::new),
    })
}

/// How to reach an S3 bucket. `Debug` never shows the secret key.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// The endpoint (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000` for a local
    /// MinIO, `https://ACCOUNT.r2.cloudflarestorage.com`); `None`: AWS in [`S3Options::region`].
    pub endpoint: Option<String>,
    /// The region (default `us-east-1`; R2 takes `auto`).
    pub region: Option<String>,
    /// Path-style addressing (`ENDPOINT/BUCKET/KEY`) instead of virtual-hosted
    /// (`BUCKET.ENDPOINT/KEY`); `None`: path style for a custom endpoint, virtual-hosted for AWS.
    pub path_style: Option<bool>,
    /// The credentials; `None` sends unsigned requests (a public bucket).
    pub credentials: Option<S3Credentials>,
    /// Allow plain `http://` to an endpoint that is not this machine.
    pub allow_insecure_http: bool,
    /// Timeouts and retries.
    pub http: HttpPolicy,
    /// Capabilities to assume instead of the safe default (`NonAtomic`) until probed.
    pub capabilities: Option<Capabilities>,
    /// Keys per ListObjectsV2 page (default 1000, S3's most; smaller in tests of paging).
    pub list_page_keys: usize,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: None,
            path_style: None,
            credentials: None,
            allow_insecure_http: false,
            http: HttpPolicy::default(),
            capabilities: None,
            list_page_keys: 1000,
        }
    }
}

impl S3Options {
    /// The timeouts and retries.
    pub(crate) fn policy(&self) -> &HttpPolicy {
        &self.http
    }
}

/// A parsed `s3://BUCKET/PREFIX` with its endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
    pub endpoint: Url,
    pub region: String,
    pub path_style: bool,
}

fn bad(url: &str, detail: impl Into<String>) -> RemoteError {
    RemoteError::Permanent {
        what: format!("remote {url}"),
        detail: detail.into(),
    }
}

impl Target {
    pub fn parse(url: &str, options: &S3Options) -> Result<Target, RemoteError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad(url, "an S3 remote is s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.']);
        if !valid_bucket {
            return Err(bad(
                url,
                format!(
                    "'{bucket}' is not a bucket name (3 to 63 lowercase letters, digits, '-' and \
                     '.'): an S3 remote is s3://BUCKET/PREFIX"
                ),
            ));
        }
        let prefix = prefix.trim_matches('/').to_string();
        crate::check_path(&prefix)?;
        let region = options
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into());
        let (endpoint, default_path_style) = match &options.endpoint {
            Some(e) => (e.clone(), true),
            None => (format!("https://s3.{region}.amazonaws.com"), false),
        };
        let endpoint = Url::parse(&endpoint)
            .map_err(|e| bad(url, format!("endpoint '{endpoint}' is not a URL: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
            return Err(bad(
                url,
                format!("endpoint '{endpoint}': expected http(s)://HOST[:PORT]"),
            ));
        }
        if endpoint.scheme() == "http"
            && !options.allow_insecure_http
            && !endpoint.host().is_some_and(|h| is_loopback(&h))
        {
            return Err(bad(
                url,
                format!(
                    "endpoint {endpoint} is plain http to another machine: requests and their \
                     signatures would travel unencrypted; use https (or allow_insecure_http)"
                ),
            ));
        }
        let path_style = options.path_style.unwrap_or(default_path_style)
            || matches!(endpoint.host(), Some(Host::Ipv4(_) | Host::Ipv6(_)));
        Ok(Target {
            bucket: bucket.to_string(),
            prefix,
            endpoint,
            region,
            path_style,
        })
    }

    /// The object key of a remote path.
    pub fn key(&self, path: &str) -> String {
        match (self.prefix.is_empty(), path.is_empty()) {
            (true, _) => path.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{path}", self.prefix),
        }
    }

    /// `s3://bucket/prefix` (for messages).
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_bucket_prefix_and_endpoint() {
        let t = Target::parse("s3://notes-bucket/team/notes/", &S3Options::default()).unwrap();
        assert_eq!(t.bucket, "notes-bucket");
        assert_eq!(t.prefix, "team/notes");
        assert_eq!(t.key("meta.json"), "team/notes/meta.json");
        assert_eq!(t.endpoint.as_str(), "https://s3.us-east-1.amazonaws.com/");
        assert!(!t.path_style);
        let local = S3Options {
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("eu-west-1".into()),
            ..S3Options::default()
        };
        let t = Target::parse("s3://b12", &local).unwrap();
        assert_eq!(t.key("meta.json"), "meta.json");
        assert!(t.path_style);
        assert_eq!(t.region, "eu-west-1");
        assert_eq!(t.describe(), "s3://b12");
    }

    #[test]
    fn bad_urls_and_plain_http_are_refused() {
        for url in ["s3://", "s3://UPPER/x", "s3://ab", "s3://b12/../x"] {
            assert!(Target::parse(url, &S3Options::default()).is_err(), "{url}");
        }
        let remote = S3Options {
            endpoint: Some("http://minio.example.org:9000".into()),
            ..S3Options::default()
        };
        let e = Target::parse("s3://bucket/x", &remote).unwrap_err();
        assert!(e.to_string().contains("unencrypted"), "{e}");
    }

    #[test]
    fn profiles_are_read_and_never_shown() {
        let text = "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n\
                    [work]\naws_access_key_id=AKIAWORK\naws_secret_access_key=very-secret\n\
                    aws_session_token = tok-value-9\n";
        let c = parse_profile(text, "work").unwrap();
        assert_eq!(c.access_key_id, "AKIAWORK");
        assert_eq!(c.secret_access_key.expose(), "very-secret");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("tok-value-9"),
            "{shown}"
        );
        assert_eq!(
            parse_profile(text, "default").unwrap().access_key_id,
            "AKIADEFAULT"
        );
        assert!(parse_profile(text, "other").is_none());
        let vars = |v: &str| match v {
            "AWS_ACCESS_KEY_ID" => Some("AKIAENV".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some(" ".to_string()),
            _ => None,
        };
        assert!(S3Credentials::from_vars(vars).is_none());
    }
}
