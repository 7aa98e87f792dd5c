//! Probing how far a remote's compare-and-swap can be trusted (`doctor`, and at `init`).
//!
//! [`probe`] writes throw-away files under `.deltasync-probe-<random>/` and deletes them
//! afterwards. It checks that ETags exist; that a fresh `If-Match` succeeds (and how long after
//! a write: Apache's ETags are weak for about a second, and a weak ETag never matches); that a
//! stale or unknown `If-Match` and an `If-None-Match: *` on an existing file give 412; that a
//! rewrite within the same second, same length, changes the ETag; that `PROPFIND` reports the
//! same ETags as `HEAD`; conditional GET; `MKCOL`; `DELETE` of a folder; and how many of a
//! number of writers racing with one ETag win, and how many racing `If-None-Match: *` creators
//! (rounds of each until one shows two winners). From that it picks a [`CasClass`].
//! [`crate::WebDav::probe`] adds what only raw HTTP shows (weak `W/` ETags, ETags missing from
//! PUT answers).

use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::s3::S3;
use crate::webdav::WebDav;
use crate::{Capabilities, CasClass, Etag, GetResult, PutMode, Remote, RemoteError};

/// What the server said in answer to a PUT, before any fallback (for the probe).
#[derive(Debug, Clone)]
pub(crate) struct RawPut {
    /// The `OC-ETag` or `ETag` header, raw.
    pub etag: Option<String>,
}

/// What only a backend's raw HTTP answers show: PUTs without the backend's own fallbacks and
/// checks, and the ETag header as sent.
pub(crate) trait Raw {
    /// A PUT as the server answers it.
    fn put_raw(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<RawPut, RemoteError>;
    /// The `ETag` header of a HEAD, as sent.
    fn raw_etag(&self, path: &str) -> Result<Option<String>, RemoteError>;
    /// Whether the server answered as Nextcloud does.
    fn is_nextcloud(&self) -> bool {
        false
    }
    /// Whether this is S3 (folders are key prefixes; listing is ListObjectsV2).
    fn is_s3(&self) -> bool {
        false
    }
}

impl Raw for WebDav {
    fn put_raw(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<RawPut, RemoteError> {
        WebDav::put_raw(self, path, body, mode)
    }
    fn raw_etag(&self, path: &str) -> Result<Option<String>, RemoteError> {
        WebDav::raw_etag(self, path)
    }
    fn is_nextcloud(&self) -> bool {
        WebDav::is_nextcloud(self)
    }
}

impl Raw for S3 {
    fn put_raw(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<RawPut, RemoteError> {
        S3::put_raw(self, path, body, mode)
    }
    fn raw_etag(&self, path: &str) -> Result<Option<String>, RemoteError> {
        Ok(self.head(path)?.and_then(|i| i.etag).map(|e| e.quoted()))
    }
    fn is_s3(&self) -> bool {
        true
    }
}

/// Writers racing with one ETag, per round.
const RACE_THREADS: usize = 8;
/// Most rounds of the If-Match race (a non-atomic server may let two win only now and then);
/// it stops at the first round with more than one winner.
const RACE_ROUNDS: usize = 10;
/// Most rounds of the create-only race, stopping the same way (sabre/dav 1.8 lets two of
/// eight creators win in about a quarter of the rounds).
const CREATE_RACE_ROUNDS: usize = 30;
/// The most a probe file is read (they are 64 or 128 bytes: a server sending more is not
/// giving back what was written).
const PROBE_READ_LIMIT: u64 = 64 * 1024;
/// How long a fresh If-Match may keep failing before CAS is declared unusable.
const MAX_WEAK_WINDOW: Duration = Duration::from_secs(4);

mod report;
pub use report::ProbeReport;

/// Probes `remote` with throw-away files under `.deltasync-probe-<random>/`, deleted after.
/// Fails only when the remote cannot be used at all (auth, unreachable, cannot write).
pub fn probe(remote: &dyn Remote) -> Result<ProbeReport, RemoteError> {
    run(remote, None)
}

/// [`probe`] for a WebDAV remote, adding what only raw HTTP shows: whether PUT answers carry
/// an ETag and whether ETags are weak right after a write.
pub fn probe_webdav(dav: &WebDav) -> Result<ProbeReport, RemoteError> {
    run(dav, Some(dav))
}

/// [`probe`] for an S3 remote, adding whether an `If-Match` on a missing key is refused (the
/// backend itself refuses that case on servers not proven atomic).
pub fn probe_s3(s3: &S3) -> Result<ProbeReport, RemoteError> {
    run(s3, Some(s3))
}

/// Deletes the probe folder when dropped (best effort, also on early return).
struct Cleanup<'a> {
    remote: &'a dyn Remote,
    dir: String,
    done: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.remote.delete(&self.dir);
        }
    }
}

/// A body of `len` bytes that differs by `tag`.
fn body(tag: &str, len: usize) -> Vec<u8> {
    let mut b = format!("{{\"deltasync-probe\":\"{tag}\",\"pad\":\"").into_bytes();
    while b.len() + 2 < len {
        b.push(b'.');
    }
    b.extend_from_slice(b"\"}");
    b
}

/// The ETag a write returned, or the one a HEAD finds.
fn etag_of(
    remote: &dyn Remote,
    path: &str,
    written: Option<Etag>,
) -> Result<Option<Etag>, RemoteError> {
    if written.is_some() {
        return Ok(written);
    }
    Ok(remote.head(path)?.and_then(|i| i.etag))
}

fn accepted(r: &Result<Option<Etag>, RemoteError>) -> Result<bool, RemoteError> {
    match r {
        Ok(_) => Ok(true),
        Err(RemoteError::PreconditionFailed { .. }) => Ok(false),
        Err(e) => Err(clone_error(e)),
    }
}

/// `RemoteError` is not `Clone` (it can hold an io::Error); rebuild what a probe can meet.
fn clone_error(e: &RemoteError) -> RemoteError {
    match e {
        RemoteError::Auth { url, user, status } => RemoteError::Auth {
            url: url.clone(),
            user: user.clone(),
            status: *status,
        },
        RemoteError::Transient { what, detail } => RemoteError::Transient {
            what: what.clone(),
            detail: detail.clone(),
        },
        RemoteError::PreconditionFailed { path } => {
            RemoteError::PreconditionFailed { path: path.clone() }
        }
        RemoteError::Locked { what } => RemoteError::Locked { what: what.clone() },
        RemoteError::TimedOut { what, detail } => RemoteError::TimedOut {
            what: what.clone(),
            detail: detail.clone(),
        },
        other => RemoteError::Permanent {
            what: "probe".into(),
            detail: other.to_string(),
        },
    }
}

fn run(remote: &dyn Remote, raw: Option<&dyn Raw>) -> Result<ProbeReport, RemoteError> {
    let started = Instant::now();
    let dir = format!(".deltasync-probe-{:016x}", fastrand::u64(..));
    let mut cleanup = Cleanup {
        remote,
        dir: dir.clone(),
        done: false,
    };
    let p = |name: &str| format!("{dir}/{name}");
    let mut r = ProbeReport {
        remote: remote.describe(),
        class: CasClass::None,
        class_reasons: Vec::new(),
        weak_window_ms: 0,
        measured_window_ms: 0,
        etag_on_put: false,
        etag_in_put_answer: None,
        etag_on_head: false,
        etag_strong: None,
        etag_changes_on_rewrite: None,
        fresh_if_match_ok: false,
        stale_if_match_rejected: None,
        unknown_if_match_rejected: None,
        if_match_missing_rejected: None,
        create_only_rejected: false,
        conditional_get: false,
        propfind_etags_match: None,
        mkcol_ok: false,
        delete_ok: false,
        race_threads: RACE_THREADS,
        race_winners: Vec::new(),
        create_race_winners: Vec::new(),
        nextcloud: false,
        s3: raw.is_some_and(|r| r.is_s3()),
        notes: Vec::new(),
        elapsed_ms: 0,
    };
    const LEN: usize = 64;
    let a = p("a.json");

    // 1. Create (this also creates the probe folder: MKCOL).
    let put = remote.put(&a, &body("one", LEN), &PutMode::CreateOnly)?;
    let mut last_write = Instant::now();
    r.mkcol_ok = true;
    r.etag_on_put = put.is_some();
    let head = remote.head(&a)?;
    let head_etag = head.as_ref().and_then(|h| h.etag.clone());
    r.etag_on_head = head_etag.is_some();
    match remote.get_max(&a, None, PROBE_READ_LIMIT)? {
        GetResult::Found { body: got, .. } if got == body("one", LEN) => {}
        // A server that does not give back what it was given is no store at all: a web page
        // answering everything with 200 (a login portal, a wrong URL).
        other => {
            let got = match other {
                GetResult::Found { body, .. } => {
                    let text = String::from_utf8_lossy(&body[..body.len().min(60)])
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    format!("{} bytes beginning '{text}'", body.len())
                }
                GetResult::NotFound => "not found".into(),
                GetResult::NotModified => "not modified".into(),
            };
            let check = if r.s3 {
                "this is not an S3 bucket that keeps what is written — check the endpoint \
                 (AWS_ENDPOINT_URL, or [s3] endpoint in deltasync.toml)"
            } else {
                "this is not a WebDAV folder that keeps what is written — check the URL (for \
                 Nextcloud: https://HOST/remote.php/dav/files/USER/FOLDER, or \
                 nextcloud://USER@HOST/FOLDER)"
            };
            return Err(RemoteError::Permanent {
                what: format!("probing {}", remote.describe()),
                detail: format!(
                    "a file written there reads back as something else ({got}): {check}"
                ),
            });
        }
    }
    if let Some(dav) = raw {
        let w = p("w.json");
        let answer = dav.put_raw(&w, &body("raw", LEN), &PutMode::Overwrite)?;
        r.etag_in_put_answer = Some(answer.etag.is_some());
        let raw_etag = answer.etag.or(dav.raw_etag(&w)?);
        r.etag_strong = raw_etag.map(|e| !e.trim_start().starts_with("W/"));
        let missing = p("missing.json");
        let bogus = PutMode::UpdateIfMatch(Etag("deltasync-probe-missing".into()));
        r.if_match_missing_rejected = Some(match dav.put_raw(&missing, b"{}", &bogus) {
            Ok(_) => false,
            Err(RemoteError::PreconditionFailed { .. }) => true,
            Err(e) => return Err(e),
        });
    }
    let Some(mut current) = head_etag.or(put) else {
        r.notes
            .push("no ETag anywhere: compare-and-swap is impossible".into());
        r.create_only_rejected =
            !accepted(&remote.put(&a, &body("one", LEN), &PutMode::CreateOnly))?;
        finish_common(remote, &mut r, &dir)?;
        r.class = CasClass::None;
        r.class_reasons = vec!["the server gives no ETags".into()];
        cleanup.done = remote.delete(&dir).is_ok();
        r.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(r);
    };

    // 2. Conditional GET.
    r.conditional_get = matches!(
        remote.get_max(&a, Some(&current), PROBE_READ_LIMIT)?,
        GetResult::NotModified
    );

    // 3. If-None-Match: * on an existing file (same body, so an accepting server changes
    //    nothing but perhaps the ETag).
    let res = remote.put(&a, &body("one", LEN), &PutMode::CreateOnly);
    r.create_only_rejected = !accepted(&res)?;
    if !r.create_only_rejected {
        last_write = Instant::now();
        current = etag_of(remote, &a, res.ok().flatten())?.unwrap_or(current);
    }

    // 4. If-Match with an ETag the server never gave.
    let bogus = Etag(format!("deltasync-probe-{:x}", fastrand::u64(..)));
    let res = remote.put(&a, &body("one", LEN), &PutMode::UpdateIfMatch(bogus));
    let unknown_accepted = accepted(&res)?;
    r.unknown_if_match_rejected = Some(!unknown_accepted);
    if unknown_accepted {
        last_write = Instant::now();
        current = etag_of(remote, &a, res.ok().flatten())?.unwrap_or(current);
    }

    // 5. If-Match with the current ETag: at once, or after how long (weak ETags)?
    let mut first_try = true;
    loop {
        let res = remote.put(
            &a,
            &body("two", LEN),
            &PutMode::UpdateIfMatch(current.clone()),
        );
        if accepted(&res)? {
            r.fresh_if_match_ok = true;
            if !first_try {
                r.measured_window_ms = last_write.elapsed().as_millis() as u64;
            }
            break;
        }
        first_try = false;
        if last_write.elapsed() > MAX_WEAK_WINDOW {
            r.notes.push(
                "If-Match with the ETag the server gave never succeeded: conditional writes \
                 are unusable"
                    .into(),
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if r.measured_window_ms > 0 {
        // Round up to a quarter second, plus a quarter second of margin.
        r.weak_window_ms = r.measured_window_ms.div_ceil(250) * 250 + 250;
    }
    let wait_window = |since: Instant, window: u64| {
        let w = Duration::from_millis(window);
        if let Some(left) = w.checked_sub(since.elapsed()) {
            std::thread::sleep(left);
        }
    };

    // 6. Same-second rewrites with same-length bodies: does the ETag change?
    let mut samples = 0;
    let mut reused = false;
    for i in 0..3 {
        let t = Instant::now();
        let e1 = etag_of(
            remote,
            &a,
            remote.put(&a, &body(&format!("x{i}"), LEN), &PutMode::Overwrite)?,
        )?;
        let e2 = etag_of(
            remote,
            &a,
            remote.put(&a, &body(&format!("y{i}"), LEN), &PutMode::Overwrite)?,
        )?;
        if t.elapsed() < Duration::from_millis(500) {
            samples += 1;
            if e1.is_some() && e1 == e2 {
                reused = true;
            }
        }
    }
    if samples > 0 {
        r.etag_changes_on_rewrite = Some(!reused);
    } else {
        r.notes
            .push("writes were too slow to test same-second rewrites".into());
    }

    // 7. A stale If-Match: the ETag of a previous version of another length.
    let old = etag_of(
        remote,
        &a,
        remote.put(&a, &body("old", LEN * 2), &PutMode::Overwrite)?,
    )?;
    std::thread::sleep(Duration::from_millis(20));
    let new = etag_of(
        remote,
        &a,
        remote.put(&a, &body("new", LEN), &PutMode::Overwrite)?,
    )?;
    let last_write = Instant::now();
    if let Some(old) = old.filter(|o| Some(o) != new.as_ref()) {
        wait_window(last_write, r.weak_window_ms);
        let res = remote.put(&a, &body("stale", LEN), &PutMode::UpdateIfMatch(old));
        r.stale_if_match_rejected = Some(!accepted(&res)?);
    } else {
        r.notes
            .push("two versions of different length had one ETag".into());
        r.stale_if_match_rejected = Some(false);
    }

    // 8. PROPFIND ETags against HEAD.
    let head_now = remote.head(&a)?.and_then(|h| h.etag);
    let listed = remote
        .list(&dir)?
        .into_iter()
        .find(|o| o.name == "a.json")
        .and_then(|o| o.etag);
    r.propfind_etags_match = match (&head_now, &listed) {
        (Some(h), Some(l)) => Some(h == l),
        (Some(_), None) => Some(false),
        _ => None,
    };

    // 9. Racing If-Match writers.
    let mut race_locked = 0;
    let race = p("race.json");
    remote.put(&race, &body("race", LEN), &PutMode::Overwrite)?;
    let mut race_write = Instant::now();
    for round in 0..RACE_ROUNDS {
        wait_window(
            race_write,
            r.weak_window_ms
                .max(if r.fresh_if_match_ok { 0 } else { 1000 }),
        );
        let Some(etag) = remote.head(&race)?.and_then(|h| h.etag) else {
            r.notes.push("race file has no ETag".into());
            break;
        };
        let barrier = Barrier::new(RACE_THREADS);
        let results: Vec<Result<bool, RemoteError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..RACE_THREADS)
                .map(|i| {
                    let (barrier, etag, race) = (&barrier, &etag, &race);
                    s.spawn(move || {
                        let b = body(&format!("r{round}w{i}"), LEN);
                        barrier.wait();
                        accepted(&remote.put(race, &b, &PutMode::UpdateIfMatch(etag.clone())))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("probe thread panicked"))
                .collect()
        });
        race_write = Instant::now();
        let mut winners = 0;
        let mut failed = Vec::new();
        for res in results {
            match res {
                Ok(true) => winners += 1,
                Ok(false) => {}
                Err(e) => failed.push(e),
            }
        }
        race_locked += failed.iter().filter(|e| e.is_locked()).count();
        if let Some(e) = failed.first() {
            r.notes.push(format!(
                "race round {}: {} of {RACE_THREADS} writes failed instead of getting 412, e.g. {e}",
                round + 1,
                failed.len()
            ));
        }
        r.race_winners.push(winners);
        if winners > 1 {
            break;
        }
    }

    // 10. Racing creators, a new file per round.
    let mut create_failed = 0;
    for round in 0..CREATE_RACE_ROUNDS {
        let created = p(&format!("created-{round}.json"));
        let barrier = Barrier::new(RACE_THREADS);
        let winners = std::thread::scope(|s| {
            let handles: Vec<_> = (0..RACE_THREADS)
                .map(|i| {
                    let (barrier, created) = (&barrier, &created);
                    s.spawn(move || {
                        let b = body(&format!("c{i}"), LEN);
                        barrier.wait();
                        accepted(&remote.put(created, &b, &PutMode::CreateOnly))
                    })
                })
                .collect();
            let results: Vec<_> = handles
                .into_iter()
                .map(|h| h.join().expect("probe thread panicked"))
                .collect();
            let failed = results.iter().filter(|r| r.is_err()).count();
            (
                results.iter().filter(|r| matches!(r, Ok(true))).count(),
                failed,
            )
        });
        let (winners, failed) = winners;
        create_failed += failed;
        r.create_race_winners.push(winners);
        if winners > 1 {
            break;
        }
    }

    finish_common(remote, &mut r, &dir)?;

    // Verdict, with its reasons.
    let max_winners = r.race_winners.iter().copied().max().unwrap_or(0);
    let mut none = Vec::new();
    if !r.fresh_if_match_ok {
        none.push("If-Match with the current ETag never succeeded".to_string());
    }
    if unknown_accepted {
        none.push("If-Match is ignored".to_string());
    }
    let mut non_atomic = Vec::new();
    if r.stale_if_match_rejected != Some(true) {
        non_atomic.push("a stale If-Match succeeded".to_string());
    }
    match r.etag_changes_on_rewrite {
        Some(false) => non_atomic.push("a same-second rewrite kept its ETag".to_string()),
        // Not tested is not proven: a server this slow may well keep ETags within a second.
        None => non_atomic.push(
            "same-second rewrites could not be tested (writes too slow), so they are taken \
             to keep their ETag"
                .to_string(),
        ),
        Some(true) => {}
    }
    if race_locked > 0 {
        // A racing writer refused with 423 instead of 412: the server serialises writes with
        // a lock taken after the precondition was checked, so two can pass the check.
        non_atomic.push(format!(
            "{race_locked} racing If-Match writers got 423 Locked instead of 412"
        ));
    }
    if create_failed > 0 {
        non_atomic.push(format!(
            "{create_failed} racing creators got an error instead of 412"
        ));
    }
    r.nextcloud = raw.is_some_and(|r| r.is_nextcloud());
    if r.nextcloud {
        non_atomic.push(
            "this is Nextcloud, whose If-Match is not atomic and which reuses ETags within a \
             second (measured on Nextcloud 34)"
                .to_string(),
        );
    }
    if max_winners > 1 {
        non_atomic.push(format!("{max_winners} racing If-Match writers won"));
    }
    if !r.create_only_rejected {
        non_atomic.push("If-None-Match: * on an existing file succeeded".to_string());
    }
    if let Some(w) = r
        .create_race_winners
        .iter()
        .copied()
        .filter(|&w| w > 1)
        .max()
    {
        non_atomic.push(format!("{w} racing creators won"));
    }
    (r.class, r.class_reasons) = if !none.is_empty() {
        (CasClass::None, none)
    } else if !non_atomic.is_empty() {
        (CasClass::NonAtomic, non_atomic)
    } else if r.weak_window_ms > 0 {
        (
            CasClass::WeakWindow,
            vec![format!(
                "ETags are weak for {} ms after a write",
                r.measured_window_ms
            )],
        )
    } else {
        (CasClass::Atomic, Vec::new())
    };

    match remote.delete(&dir) {
        Ok(()) => cleanup.done = true,
        Err(e) => r.notes.push(format!("could not delete {dir}: {e}")),
    }
    r.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(r)
}

/// MKCOL of nested folders and DELETE of a folder with contents.
fn finish_common(remote: &dyn Remote, r: &mut ProbeReport, dir: &str) -> Result<(), RemoteError> {
    let deep = format!("{dir}/sub/deep/b.json");
    match remote.put(&deep, b"{}", &PutMode::Overwrite) {
        Ok(_) => {
            let sub_listed = remote
                .list(dir)?
                .iter()
                .any(|o| o.name == "sub" && o.is_dir);
            if !sub_listed {
                r.notes
                    .push("a created folder is not listed as a folder".into());
            }
        }
        Err(e) => {
            r.mkcol_ok = false;
            r.notes.push(format!("creating nested folders failed: {e}"));
            return Ok(());
        }
    }
    let sub = format!("{dir}/sub");
    let deleted = remote.delete(&sub).is_ok() && remote.head(&deep)?.is_none();
    let missing_ok = remote.delete(&format!("{dir}/never-existed.json")).is_ok();
    r.delete_ok = deleted && missing_ok;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_asked_length() {
        assert_eq!(body("a", 64).len(), 64);
        assert_eq!(body("bb", 64).len(), 64);
        assert_ne!(body("a", 64), body("b", 64));
        assert_eq!(body("old", 128).len(), 128);
    }

    #[test]
    fn explain_says_what_deltasync_does() {
        let mut r = ProbeReport {
            remote: "http://127.0.0.1/".into(),
            class: CasClass::WeakWindow,
            class_reasons: vec![],
            weak_window_ms: 1500,
            measured_window_ms: 1100,
            etag_on_put: true,
            etag_in_put_answer: Some(false),
            etag_on_head: true,
            etag_strong: Some(false),
            etag_changes_on_rewrite: Some(true),
            fresh_if_match_ok: true,
            stale_if_match_rejected: Some(true),
            unknown_if_match_rejected: Some(true),
            if_match_missing_rejected: Some(true),
            create_only_rejected: true,
            conditional_get: true,
            propfind_etags_match: Some(true),
            mkcol_ok: true,
            delete_ok: true,
            race_threads: 8,
            race_winners: vec![1, 1, 1],
            create_race_winners: vec![1, 1],
            nextcloud: false,
            s3: false,
            notes: vec![],
            elapsed_ms: 10,
        };
        let text = r.explain().join("\n");
        assert!(text.contains("waits 1500 ms"), "{text}");
        assert!(text.contains("not in PUT answers"), "{text}");
        assert_eq!(r.capabilities().weak_window_ms, 1500);
        r.class = CasClass::None;
        assert!(r.explain().join("\n").contains("lease lock"));
        assert_eq!(r.to_json()["class"], "none");
    }
}
