//! S3's error answers (`<Error><Code>…</Code><Message>…</Message></Error>`) mapped to
//! [`RemoteError`]s that say whether a retry helps and what to check.

use std::time::{Duration, SystemTime};

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::RemoteError;

/// The fields of an S3 error answer that deltasync looks at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct S3Error {
    pub code: String,
    pub message: String,
    pub bucket: String,
}

/// Parses an error body; an empty or unreadable one gives empty fields.
pub(crate) fn parse(xml: &str) -> S3Error {
    let mut reader = Reader::from_str(xml);
    let mut out = S3Error::default();
    let mut current: Option<Vec<u8>> = None;
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                current = Some(e.local_name().as_ref().as_bytes().to_vec());
                text.clear();
            }
            Ok(Event::Text(t)) => text.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else if let Some(s) =
                    quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                {
                    text.push_str(s);
                }
            }
            Ok(Event::End(_)) => {
                let t = std::mem::take(&mut text);
                match current.take().as_deref() {
                    Some(b"Code") => out.code = t.trim().to_string(),
                    Some(b"Message") => out.message = t.trim().to_string(),
                    Some(b"BucketName") => out.bucket = t.trim().to_string(),
                    _ => {}
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// How far the server's clock (its `Date` header) is from ours, when more than a minute.
pub(crate) fn clock_skew(date: Option<&str>) -> Option<(i64, Duration)> {
    let server = httpdate::parse_http_date(date?).ok()?;
    let now = SystemTime::now();
    let (sign, skew) = match server.duration_since(now) {
        Ok(ahead) => (1, ahead),
        Err(e) => (-1, e.duration()),
    };
    (skew > Duration::from_secs(60)).then_some((sign, skew))
}

/// What an answer the caller did not expect means. `what` names the request (method and
/// `s3://` address, never a signed URL); `bucket`/`endpoint` are for NoSuchBucket.
pub(crate) fn status_error(
    what: &str,
    status: u16,
    err: &S3Error,
    date: Option<&str>,
    bucket: &str,
    endpoint: &str,
) -> RemoteError {
    let code = err.code.as_str();
    let said = if err.message.is_empty() {
        format!("HTTP {status} {code}")
    } else {
        format!("HTTP {status} {code}: {}", err.message)
    };
    let said = said.trim().to_string();
    let skew = clock_skew(date);
    if code == "RequestTimeTooSkewed" || (status == 403 && skew.is_some()) {
        let clock = match skew {
            Some((sign, d)) => format!(
                "this machine's clock is {} s {} the server's",
                d.as_secs(),
                if sign > 0 { "behind" } else { "ahead of" }
            ),
            None => "this machine's clock is off".into(),
        };
        return RemoteError::Denied {
            what: what.to_string(),
            detail: format!(
                "{said} ({clock}: S3 signatures carry the time; set the clock right, e.g. \
                 enable NTP with `timedatectl set-ntp true`)"
            ),
        };
    }
    match (status, code) {
        (_, "NoSuchBucket") => RemoteError::Permanent {
            what: what.to_string(),
            detail: format!(
                "the bucket '{}' does not exist at {endpoint}: create it, or check the bucket \
                 name, the endpoint and the region",
                if err.bucket.is_empty() {
                    bucket
                } else {
                    &err.bucket
                }
            ),
        },
        (_, "SignatureDoesNotMatch") => RemoteError::Denied {
            what: what.to_string(),
            detail: format!(
                "{said} (the secret access key does not match the access key id; check \
                 AWS_SECRET_ACCESS_KEY or the profile in ~/.aws/credentials)"
            ),
        },
        (_, "InvalidAccessKeyId") => RemoteError::Denied {
            what: what.to_string(),
            detail: format!(
                "{said} (no such access key at this endpoint; check AWS_ACCESS_KEY_ID, the \
                 profile, and that the endpoint is the provider's)"
            ),
        },
        (_, "ExpiredToken" | "InvalidToken") => RemoteError::Denied {
            what: what.to_string(),
            detail: format!("{said} (the session token has expired: get new credentials)"),
        },
        (
            _,
            "AuthorizationHeaderMalformed"
            | "PermanentRedirect"
            | "IllegalLocationConstraintException",
        )
        | (301, _) => RemoteError::Permanent {
            what: what.to_string(),
            detail: format!(
                "{said} (the bucket is in another region: set AWS_REGION or [s3] region in \
                 deltasync.toml)"
            ),
        },
        (401 | 403, _) => RemoteError::Denied {
            what: what.to_string(),
            detail: format!(
                "{said} (the credentials are not allowed this request on the bucket '{bucket}': \
                 check the key's policy)"
            ),
        },
        // Concurrent conditional writes to one key: nothing was written, try again.
        (409, "ConditionalRequestConflict" | "OperationAborted") => RemoteError::Transient {
            what: what.to_string(),
            detail: said,
        },
        (501, _) | (_, "NotImplemented") => RemoteError::Permanent {
            what: what.to_string(),
            detail: format!("{said} (this S3 server does not implement the request)"),
        },
        (_, "SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout")
        | (408 | 429 | 500..=599, _) => RemoteError::Transient {
            what: what.to_string(),
            detail: said,
        },
        _ => RemoteError::Permanent {
            what: what.to_string(),
            detail: said,
        },
    }
}

/// Whether an answer means nothing was done and the very same request may be sent again
/// (also a PUT: 503 SlowDown, 409 ConditionalRequestConflict, 429).
pub(crate) fn nothing_done(status: u16, code: &str) -> bool {
    matches!(status, 429 | 503)
        || code == "SlowDown"
        || (status == 409 && code == "ConditionalRequestConflict")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>1</RequestId></Error>"#;

    #[test]
    fn error_bodies_are_read() {
        let e = parse(SLOW);
        assert_eq!(e.code, "SlowDown");
        assert_eq!(e.message, "Please reduce your request rate.");
        assert_eq!(parse("not xml <"), S3Error::default());
        let b = parse("<Error><Code>NoSuchBucket</Code><BucketName>my-b</BucketName></Error>");
        assert_eq!(b.bucket, "my-b");
    }

    #[test]
    fn errors_say_whether_a_retry_helps() {
        let map = |status, xml: &str| {
            status_error("PUT s3://b/k", status, &parse(xml), None, "b", "http://e/")
        };
        assert!(map(503, SLOW).is_temporary());
        assert!(map(500, "").is_temporary());
        let conflict = "<Error><Code>ConditionalRequestConflict</Code></Error>";
        assert!(map(409, conflict).is_temporary());
        assert!(nothing_done(409, "ConditionalRequestConflict"));
        assert!(!nothing_done(500, "InternalError"));
        let denied = map(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>");
        assert!(matches!(denied, RemoteError::Denied { .. }) && !denied.is_temporary());
        assert!(denied.to_string().contains("secret access key"), "{denied}");
        let key = map(403, "<Error><Code>InvalidAccessKeyId</Code></Error>");
        assert!(key.to_string().contains("AWS_ACCESS_KEY_ID"), "{key}");
        let bucket = map(404, "<Error><Code>NoSuchBucket</Code></Error>");
        assert!(
            bucket.to_string().contains("bucket 'b' does not exist"),
            "{bucket}"
        );
        assert!(!bucket.is_temporary());
    }

    #[test]
    fn a_skewed_clock_is_named() {
        let skewed = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        let e = status_error(
            "GET s3://b/k",
            403,
            &parse("<Error><Code>RequestTimeTooSkewed</Code></Error>"),
            Some(&skewed),
            "b",
            "http://e/",
        );
        let text = e.to_string();
        assert!(
            text.contains("behind the server's") && text.contains("clock"),
            "{text}"
        );
        let now = httpdate::fmt_http_date(SystemTime::now());
        assert!(clock_skew(Some(&now)).is_none());
    }
}
