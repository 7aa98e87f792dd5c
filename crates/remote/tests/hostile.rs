//! The WebDAV backend against hostile servers on 127.0.0.1: an endless or huge answer is cut
//! at the size the caller allows, and a server that trickles its answer one byte a second
//! meets the request's deadline, not a sync that runs for twenty minutes; an error's endless
//! body is read only as far as the error quotes it, and a folder listing without end (a WebDAV
//! `PROPFIND` answer, S3 list pages) is cut at `MAX_LISTING_BYTES`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use deltasync_remote::{
    HttpPolicy, MAX_LISTING_BYTES, Remote, RemoteError, S3, S3Options, Secret, WebDav,
    WebDavOptions,
};

/// A server answering every request with `answer(stream)`, for at most 30 s.
fn serve(answer: fn(&mut TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let started = Instant::now();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = conn.read(&mut buf);
                answer(&mut conn);
            });
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
    });
    format!("http://{addr}/dav/")
}

fn dav(url: &str, timeout: Duration) -> WebDav {
    WebDav::open(
        url,
        &WebDavOptions {
            http: HttpPolicy {
                timeout,
                retries: 0,
                ..HttpPolicy::default()
            },
            ..WebDavOptions::with_credentials("u", Secret::new("p"))
        },
    )
    .unwrap()
}

/// Chunks of 64 KiB, without end (until the client hangs up, or 1 GiB).
fn endless_chunked(s: &mut TcpStream) {
    let _ = s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..(1 << 14) {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            return;
        }
    }
}

fn huge_length(s: &mut TcpStream) {
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n{");
    std::thread::sleep(Duration::from_secs(2));
}

fn one_byte_a_second(s: &mut TcpStream) {
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    for _ in 0..1000 {
        if s.write_all(b" ").is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn an_endless_answer_is_cut_at_the_limit() {
    let url = serve(endless_chunked);
    let started = Instant::now();
    let e = dav(&url, Duration::from_secs(20))
        .get_max("meta.json", None, 1 << 20)
        .unwrap_err();
    assert!(matches!(e, RemoteError::TooLarge { .. }), "{e}");
    assert!(!e.is_temporary());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_huge_declared_length_is_refused_before_reading() {
    let url = serve(huge_length);
    let started = Instant::now();
    let e = dav(&url, Duration::from_secs(20))
        .get_max("meta.json", None, 64 << 20)
        .unwrap_err();
    assert!(matches!(e, RemoteError::TooLarge { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_trickling_answer_meets_the_request_deadline() {
    let url = serve(one_byte_a_second);
    let started = Instant::now();
    let e = dav(&url, Duration::from_secs(3))
        .get("meta.json", None)
        .unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a 3 s deadline took {:?}: {e}",
        started.elapsed()
    );
}

fn html_for_everything(s: &mut TcpStream) {
    let page = "<!DOCTYPE html><html><body><h1>Welcome</h1>Please log in.</body></html>";
    let _ = s.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nETag: \"page\"\r\n\r\n{page}",
            page.len()
        )
        .as_bytes(),
    );
}

/// A server answering an HTML page with 200 to every request (a login portal, a wrong URL):
/// the probe of `init` refuses it, saying what came back and which URL to use.
#[test]
fn a_server_answering_html_to_everything_is_not_a_remote() {
    let url = serve(html_for_everything);
    let e = dav(&url, Duration::from_secs(10)).probe().unwrap_err();
    let text = e.to_string();
    assert!(!e.is_temporary(), "{text}");
    assert!(text.contains("not a WebDAV folder"), "{text}");
    assert!(text.contains("<!DOCTYPE html>"), "{text}");
}

/// An error status with an endless body (chunks of 64 KiB, up to 1 GiB).
fn endless_error(s: &mut TcpStream) {
    let _ = s.write_all(
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..(1 << 14) {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            return;
        }
    }
}

/// The error for an unexpected status quotes the start of its body: only that much is read, not
/// a gigabyte of it.
#[test]
fn an_error_with_an_endless_body_reads_only_its_start() {
    let url = serve(endless_error);
    let started = Instant::now();
    let e = dav(&url, Duration::from_secs(20))
        .get("meta.json", None)
        .unwrap_err();
    let text = e.to_string();
    assert!(!e.is_temporary(), "{text}");
    assert!(text.contains("HTTP 400") && text.contains("xxxx"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// A `207 Multi-Status` that never ends: one `<response>` after another, in chunks of about
/// 64 KiB, up to 1 GiB (or until the client hangs up).
fn endless_multistatus(s: &mut TcpStream) {
    let _ = s.write_all(
        b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml; charset=utf-8\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    );
    let head = "<?xml version=\"1.0\" encoding=\"utf-8\"?><d:multistatus xmlns:d=\"DAV:\">";
    let _ = s.write_all(format!("{:x}\r\n{head}\r\n", head.len()).as_bytes());
    let mut chunk = String::new();
    let mut n = 0u64;
    for _ in 0..(1 << 14) {
        chunk.clear();
        while chunk.len() < 64 * 1024 {
            n += 1;
            chunk.push_str(&format!(
                "<d:response><d:href>/dav/deltas/g0/d{n:012}.json</d:href><d:propstat><d:prop>\
                 <d:resourcetype/><d:getcontentlength>100</d:getcontentlength>\
                 <d:getetag>\"e{n}\"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status>\
                 </d:propstat></d:response>"
            ));
        }
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || s.write_all(chunk.as_bytes()).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            return;
        }
    }
}

/// A folder's listing has no size the format gives it, but it has a bound: an endless
/// multistatus is cut at [`MAX_LISTING_BYTES`] with a typed error that says what it is, rather
/// than read into memory to its end (a gigabyte here, without end on a hostile server).
#[test]
fn an_endless_listing_is_cut_at_the_listing_limit() {
    let url = serve(endless_multistatus);
    let started = Instant::now();
    let e = dav(&url, Duration::from_secs(30))
        .list("deltas/g0")
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::ListingTooLarge { ref dir, limit } if dir == "deltas/g0" && limit == MAX_LISTING_BYTES),
        "{e}"
    );
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("deltas/g0"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// S3: ListObjectsV2 pages without end, 8 MiB each (mostly blanks between elements), each
/// naming a new continuation token.
fn endless_list_pages(s: &mut TcpStream) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PAGE: AtomicU64 = AtomicU64::new(0);
    let page = PAGE.fetch_add(1, Ordering::Relaxed);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Name>bkt</Name><Prefix>p/deltas/</Prefix><MaxKeys>1000</MaxKeys>\
         <IsTruncated>true</IsTruncated><Contents><Key>p/deltas/d{page}.json</Key>\
         <Size>100</Size><ETag>\"e{page}\"</ETag></Contents>{}\
         <NextContinuationToken>t{page}</NextContinuationToken></ListBucketResult>",
        " ".repeat(8 << 20)
    );
    let _ = s.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = s.write_all(body.as_bytes());
}

/// An S3 server that names one more page after every page is followed up to
/// [`MAX_LISTING_BYTES`] of pages in all, not for ever.
#[test]
fn endless_s3_list_pages_are_cut_at_the_listing_limit() {
    let url = serve(endless_list_pages);
    let endpoint = url.trim_end_matches("/dav/").to_string();
    let s3 = S3::open(
        "s3://bkt/p",
        &S3Options {
            endpoint: Some(endpoint),
            http: HttpPolicy {
                timeout: Duration::from_secs(20),
                retries: 0,
                ..HttpPolicy::default()
            },
            ..S3Options::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    let e = s3.list("deltas").unwrap_err();
    assert!(
        matches!(e, RemoteError::ListingTooLarge { ref dir, limit } if dir == "deltas" && limit == MAX_LISTING_BYTES),
        "{e}"
    );
    assert!(!e.is_temporary(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
}
