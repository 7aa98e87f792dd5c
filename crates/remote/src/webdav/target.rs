//! Remote URLs: parsing, the Nextcloud shorthand, the insecure-http rule, and building request
//! URLs from remote paths.

use std::net::IpAddr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use url::{Host, Url};

use crate::RemoteError;

/// Characters percent-encoded in a path segment: everything but RFC 3986 "unreserved".
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where a [`super::WebDav`] remote lives.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The root collection, without credentials, its path ending with `/`.
    pub base: Url,
    /// The percent-decoded path of `base` (ends with `/`).
    pub base_path: String,
    /// The user named in the URL (`nextcloud://user@host`, `https://user@host`).
    pub user: Option<String>,
    /// Whether this is a Nextcloud (or ownCloud) server.
    pub nextcloud: bool,
}

/// The URL as given, with any `user:password@` removed, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn bad(url: &str, detail: impl Into<String>) -> RemoteError {
    RemoteError::Permanent {
        what: format!("remote {}", redact(url)),
        detail: detail.into(),
    }
}

/// Whether `host` is this machine: 127.0.0.0/8, ::1 or `localhost`.
pub(crate) fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl Target {
    /// Parses `http(s)://[user@]host[:port]/path`, `nextcloud://user@host[:port]/path`
    /// (https) or `nextcloud+http://user@host[:port]/path` (plain http, for a Nextcloud on
    /// this machine or, with insecure http allowed, on the LAN).
    pub fn parse(url: &str, allow_insecure_http: bool) -> Result<Target, RemoteError> {
        let (text, nextcloud) = if let Some(rest) = url.strip_prefix("nextcloud://") {
            (format!("https://{rest}"), true)
        } else if let Some(rest) = url.strip_prefix("nextcloud+http://") {
            (format!("http://{rest}"), true)
        } else {
            (url.to_string(), false)
        };
        let mut parsed =
            Url::parse(&text).map_err(|e| bad(url, format!("not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(RemoteError::UnsupportedUrl(redact(url)));
        }
        if parsed.password().is_some() {
            return Err(bad(
                url,
                "the URL holds a password: keep it in the system keyring (deltasync \
                 login), DELTASYNC_PASSWORD or a password_command instead, never in the URL \
                 or deltasync.toml",
            ));
        }
        let host = parsed
            .host()
            .ok_or_else(|| bad(url, "the URL has no host"))?
            .to_owned();
        if parsed.scheme() == "http" && !allow_insecure_http && !is_loopback(&host_ref(&host)) {
            return Err(bad(
                url,
                "plain http to another machine would send the password unencrypted: use \
                 https:// (or nextcloud://), or allow insecure http explicitly (auth.allow_insecure_http \
                 = true in deltasync.toml)",
            ));
        }
        let user = match parsed.username() {
            "" => None,
            u => Some(
                percent_decode_str(u)
                    .decode_utf8()
                    .map_err(|_| bad(url, "the user name is not valid UTF-8"))?
                    .into_owned(),
            ),
        };
        let _ = parsed.set_username("");
        parsed.set_query(None);
        parsed.set_fragment(None);
        let mut path = parsed.path().trim_end_matches('/').to_string();
        if nextcloud {
            let Some(user) = &user else {
                return Err(bad(
                    url,
                    "a nextcloud:// URL names the user: nextcloud://user@host/folder",
                ));
            };
            path = format!(
                "/remote.php/dav/files/{}{}",
                utf8_percent_encode(user, SEGMENT),
                path
            );
        }
        path.push('/');
        parsed.set_path(&path);
        let base_path = percent_decode_str(parsed.path())
            .decode_utf8_lossy()
            .into_owned();
        let nextcloud = nextcloud || base_path.contains("/remote.php/");
        Ok(Target {
            base: parsed,
            base_path,
            user,
            nextcloud,
        })
    }

    /// For a Nextcloud URL: the server's own root (what comes before `remote.php/`, ending
    /// with `/`), where `status.php` and the Login Flow live.
    pub fn nextcloud_root(&self) -> Option<String> {
        let base = self.base.as_str();
        let at = base.find("/remote.php/")?;
        Some(base[..=at].to_string())
    }

    /// The URL of a file (or folder, without a trailing `/`) at the relative `path`.
    pub fn url(&self, path: &str) -> String {
        let mut s = self.base.as_str().to_string();
        for (i, seg) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
            if i > 0 {
                s.push('/');
            }
            s.extend(utf8_percent_encode(seg, SEGMENT));
        }
        s
    }

    /// The URL of a folder at the relative `path`, ending with `/` (the root when empty).
    pub fn dir_url(&self, path: &str) -> String {
        let mut s = self.url(path);
        if !s.ends_with('/') {
            s.push('/');
        }
        s
    }
}

fn host_ref(host: &Host<String>) -> Host<&str> {
    match host {
        Host::Domain(d) => Host::Domain(d.as_str()),
        Host::Ipv4(ip) => Host::Ipv4(*ip),
        Host::Ipv6(ip) => Host::Ipv6(*ip),
    }
}

/// The parent collection URL of a collection or file URL (`…/a/b` or `…/a/b/` → `…/a/`), or
/// `None` at the server root.
pub(crate) fn parent_url(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    let path = parsed.path().trim_end_matches('/');
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind('/')?;
    let mut parent = parsed.clone();
    parent.set_path(&path[..=cut]);
    Some(parent.to_string())
}

/// The percent-decoded path of an `href` from a multistatus answer (an absolute path or a full
/// URL).
pub(crate) fn href_path(href: &str) -> String {
    let path = if href.starts_with("http://") || href.starts_with("https://") {
        Url::parse(href)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| href.to_string())
    } else {
        href.to_string()
    };
    percent_decode_str(&path).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextcloud_urls_expand() {
        let t = Target::parse("nextcloud://alice@cloud.example.org/Apps/deltasync", false).unwrap();
        assert_eq!(
            t.base.as_str(),
            "https://cloud.example.org/remote.php/dav/files/alice/Apps/deltasync/"
        );
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert!(t.nextcloud);
        let t = Target::parse("nextcloud://a%40b.c@cloud.example.org:8443", false).unwrap();
        assert_eq!(
            t.base.as_str(),
            "https://cloud.example.org:8443/remote.php/dav/files/a%40b.c/"
        );
        assert_eq!(t.user.as_deref(), Some("a@b.c"));
        assert!(Target::parse("nextcloud://cloud.example.org/x", false).is_err());
        // Plain http for a Nextcloud on the LAN: only when allowed, or on this machine.
        let lan = "nextcloud+http://alice@192.0.2.7:8080/Apps/deltasync";
        let err = Target::parse(lan, false).unwrap_err().to_string();
        assert!(err.contains("allow_insecure_http"), "{err}");
        let t = Target::parse(lan, true).unwrap();
        assert_eq!(
            t.base.as_str(),
            "http://192.0.2.7:8080/remote.php/dav/files/alice/Apps/deltasync/"
        );
        assert!(t.nextcloud);
        assert_eq!(t.nextcloud_root().unwrap(), "http://192.0.2.7:8080/");
        assert!(Target::parse("nextcloud+http://alice@127.0.0.1:8080/x", false).is_ok());
        let sub = Target::parse("https://h.example/cloud/remote.php/dav/files/a/x", false).unwrap();
        assert_eq!(sub.nextcloud_root().unwrap(), "https://h.example/cloud/");
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "http://127.0.0.1:8080/dav",
            "http://127.1.2.3/",
            "http://localhost/x",
            "http://[::1]:80/",
            "https://example.org/dav",
        ] {
            Target::parse(ok, false).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for no in [
            "http://example.org/dav",
            "http://192.168.1.2/",
            "http://[::2]/",
        ] {
            let e = Target::parse(no, false).unwrap_err();
            assert!(e.to_string().contains("unencrypted"), "{e}");
            Target::parse(no, true).unwrap();
        }
    }

    #[test]
    fn passwords_in_urls_are_refused_without_echoing_them() {
        let e = Target::parse("https://bob:s3cr3t@example.org/dav", false).unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("s3cr3t"), "{msg}");
        assert!(msg.contains("DELTASYNC_PASSWORD"), "{msg}");
        assert_eq!(
            redact("https://bob:s3cr3t@example.org/a@b"),
            "https://example.org/a@b"
        );
        let t = Target::parse("https://bob@example.org/dav", false).unwrap();
        assert_eq!(t.base.as_str(), "https://example.org/dav/");
        assert_eq!(t.user.as_deref(), Some("bob"));
    }

    #[test]
    fn paths_are_encoded_per_segment() {
        let t = Target::parse("http://127.0.0.1:1/my dav/", false).unwrap();
        assert_eq!(t.base.as_str(), "http://127.0.0.1:1/my%20dav/");
        assert_eq!(t.base_path, "/my dav/");
        assert_eq!(
            t.url("a b/c#d?e%f.json"),
            "http://127.0.0.1:1/my%20dav/a%20b/c%23d%3Fe%25f.json"
        );
        assert_eq!(t.dir_url(""), "http://127.0.0.1:1/my%20dav/");
        assert_eq!(t.dir_url("x"), "http://127.0.0.1:1/my%20dav/x/");
        assert_eq!(parent_url("http://h/a/b/").as_deref(), Some("http://h/a/"));
        assert_eq!(parent_url("http://h/a").as_deref(), Some("http://h/"));
        assert_eq!(parent_url("http://h/"), None);
        assert_eq!(href_path("http://h/a%20b/"), "/a b/");
        assert_eq!(href_path("/a%20b/c"), "/a b/c");
    }
}
