//! What a probe found ([`ProbeReport`]): its fields, the class they imply, the capabilities
//! that follow, and the report as text (`doctor`) and JSON (meta.json's `server`).

use super::*;

/// What a probe found: plain data, see [`ProbeReport::explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The remote probed ([`Remote::describe`]).
    pub remote: String,
    /// The verdict.
    pub class: CasClass,
    /// Why the verdict is not a better one (empty for atomic).
    pub class_reasons: Vec<String>,
    /// Milliseconds to wait after a write before an If-Match on it can succeed, with a margin
    /// (0 when a fresh If-Match succeeds at once).
    pub weak_window_ms: u64,
    /// The weak window as measured: time from a write to the first successful If-Match.
    pub measured_window_ms: u64,
    /// A PUT gave an ETag (from its answer or a HEAD after it).
    pub etag_on_put: bool,
    /// The PUT answer itself carried an ETag (`None`: not known through this remote).
    pub etag_in_put_answer: Option<bool>,
    /// HEAD gives an ETag.
    pub etag_on_head: bool,
    /// The ETag right after a write is strong, no `W/` (`None`: not known).
    pub etag_strong: Option<bool>,
    /// A rewrite within the same second with a different body of the same length changed the
    /// ETag (`None`: no ETags, or could not be tested).
    pub etag_changes_on_rewrite: Option<bool>,
    /// An If-Match with the current ETag succeeded (at once or after the weak window).
    pub fresh_if_match_ok: bool,
    /// An If-Match with a previous version's ETag gave 412.
    pub stale_if_match_rejected: Option<bool>,
    /// An If-Match with an ETag the server never gave gave 412.
    pub unknown_if_match_rejected: Option<bool>,
    /// An If-Match on a missing file gave 412 (`None`: not known through this remote; the
    /// WebDAV backend refuses that case itself on servers not proven atomic).
    pub if_match_missing_rejected: Option<bool>,
    /// `If-None-Match: *` on an existing file gave 412.
    pub create_only_rejected: bool,
    /// GET with the current ETag as If-None-Match gave 304.
    pub conditional_get: bool,
    /// PROPFIND (list) gives the same ETag as HEAD (`None`: no ETags).
    pub propfind_etags_match: Option<bool>,
    /// Missing parent folders were created by a PUT (MKCOL).
    pub mkcol_ok: bool,
    /// Deleting a folder removed it with its contents, and deleting a missing path succeeded.
    pub delete_ok: bool,
    /// Writers per race round.
    pub race_threads: usize,
    /// Winners of each race round (all racing with one ETag): 1 each is atomic.
    pub race_winners: Vec<usize>,
    /// Winners of each round of writers creating one file with `If-None-Match: *` (a new
    /// file per round): 1 each is atomic.
    pub create_race_winners: Vec<usize>,
    /// The server answered as Nextcloud (or ownCloud) does (`OC-ETag`, `OC-FileId`, a
    /// `/remote.php/` URL).
    pub nextcloud: bool,
    /// The remote is S3: folders are key prefixes and listing is ListObjectsV2 (the
    /// `propfind_*` and `mkcol_*` fields are about listing and nested keys).
    pub s3: bool,
    /// Anything else worth telling (unexpected answers, cleanup failures).
    pub notes: Vec<String>,
    /// How long the probe took.
    pub elapsed_ms: u64,
}

impl ProbeReport {
    /// The capabilities that follow from the probe.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            cas: self.class,
            conditional_get: self.conditional_get,
            recursive_delete: self.delete_ok,
            weak_window_ms: self.weak_window_ms,
            stale_etags: true,
            // What the backend is, not what the probe saw: the backends say it themselves.
            networked: true,
            retries_reads: true,
        }
    }

    /// Plain-English lines: what was found, then what deltasync will do.
    pub fn explain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let yes = |b: bool, y: &str, n: &str| if b { y.to_string() } else { n.to_string() };
        out.push(format!("Remote: {}", self.remote));
        out.push(match (self.etag_on_put, self.etag_in_put_answer) {
            (false, _) => {
                "ETags: none after a PUT — this server gives no version to compare.".to_string()
            }
            (true, Some(false)) => {
                "ETags: not in PUT answers; a HEAD after each PUT finds them.".to_string()
            }
            (true, _) => "ETags: given in PUT answers.".to_string(),
        });
        out.push(yes(
            self.etag_on_head,
            "HEAD gives ETags.",
            "HEAD gives no ETag.",
        ));
        match self.etag_strong {
            Some(true) => out.push("ETags are strong right after a write.".into()),
            Some(false) => out.push("ETags are weak (W/) right after a write.".into()),
            None => {}
        }
        if self.fresh_if_match_ok {
            if self.measured_window_ms == 0 {
                out.push("If-Match with the current ETag succeeded at once.".into());
            } else {
                out.push(format!(
                    "If-Match with the current ETag failed for {} ms after a write (weak ETag), \
                     then succeeded.",
                    self.measured_window_ms
                ));
            }
        } else if self.etag_on_put || self.etag_on_head {
            out.push(format!(
                "If-Match with the current ETag never succeeded within {} s.",
                MAX_WEAK_WINDOW.as_secs()
            ));
        }
        let tri = |v: Option<bool>, y: &str, n: &str| match v {
            Some(true) => Some(y.to_string()),
            Some(false) => Some(n.to_string()),
            None => None,
        };
        out.extend(tri(
            self.stale_if_match_rejected,
            "A stale If-Match was refused (412).",
            "A stale If-Match was ACCEPTED: the server does not check If-Match properly.",
        ));
        out.extend(tri(
            self.unknown_if_match_rejected,
            "An If-Match with a made-up ETag was refused (412).",
            "An If-Match with a made-up ETag was ACCEPTED: the server ignores If-Match.",
        ));
        out.extend(tri(
            self.if_match_missing_rejected,
            "An If-Match on a missing file was refused (412).",
            "An If-Match on a missing file CREATED it: deltasync checks that the file exists \
             before such a write.",
        ));
        out.push(yes(
            self.create_only_rejected,
            "If-None-Match: * on an existing file was refused (412).",
            "If-None-Match: * on an existing file was ACCEPTED: create-only writes can overwrite.",
        ));
        out.extend(tri(
            self.etag_changes_on_rewrite,
            "A same-second rewrite with a same-length body changed the ETag.",
            "A same-second rewrite with a same-length body KEPT the ETag: a stale If-Match can \
             succeed.",
        ));
        let listing = if self.s3 {
            "Listing (ListObjectsV2)"
        } else {
            "PROPFIND"
        };
        out.extend(tri(
            self.propfind_etags_match,
            &format!("{listing} gives the same ETags as HEAD."),
            &format!("{listing} gives no ETags, or other ones than HEAD."),
        ));
        out.push(yes(
            self.conditional_get,
            "A GET with the current ETag answered 304 Not Modified.",
            "A GET with the current ETag did not answer 304: every poll downloads the file.",
        ));
        if self.s3 {
            out.push(yes(
                self.mkcol_ok,
                "Keys under new prefixes were written (S3 has no folders to create).",
                "Keys under new prefixes could not be written.",
            ));
            out.push(yes(
                self.delete_ok,
                "A prefix was deleted with everything under it (DeleteObjects).",
                "Deleting a prefix with everything under it did not work.",
            ));
        } else {
            out.push(yes(
                self.mkcol_ok,
                "Missing folders were created (MKCOL).",
                "Missing folders could not be created.",
            ));
            out.push(yes(
                self.delete_ok,
                "A folder was deleted with its contents in one request.",
                "Deleting a folder with contents did not work in one request.",
            ));
        }
        if !self.race_winners.is_empty() {
            out.push(format!(
                "{} writers racing with one ETag: {}.",
                self.race_threads,
                rounds_text(&self.race_winners)
            ));
        }
        if !self.create_race_winners.is_empty() {
            out.push(format!(
                "{} writers creating one file with If-None-Match: *: {}.",
                self.race_threads,
                rounds_text(&self.create_race_winners)
            ));
        }
        out.extend(self.notes.iter().map(|n| format!("Note: {n}")));
        if self.nextcloud {
            out.push(
                "Nextcloud: deltasync gives each meta.json it writes a modification time \
                 (X-OC-MTime) above the one it replaces, so every commit gets a new ETag; reads \
                 meta.json in full at least every 30 s and after each of its commits, so a \
                 reused ETag cannot hide a commit for longer; takes 423 Locked as \
                 \"try again\"; and deletes with X-NC-Skip-Trashbin, leaving nothing in the \
                 trash bin."
                    .to_string(),
            );
        }
        let because = if self.class_reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.class_reasons.join("; "))
        };
        out.push(match self.class {
            CasClass::Atomic => {
                "Class: atomic. deltasync uses its commit protocol as is: a conditional PUT of \
                 meta.json either wins alone or gets 412."
                    .to_string()
            }
            CasClass::WeakWindow => format!(
                "Class: weak-window{because}. Compare-and-swap works once an ETag is strong: \
                 deltasync waits {} ms after writing meta.json before the next If-Match on it.",
                self.weak_window_ms
            ),
            CasClass::NonAtomic => format!(
                "Class: non-atomic{because}. A stale If-Match can succeed or two writers can \
                 both win: deltasync keeps each commit unconfirmed until a later meta.json still \
                 lists it, and commits again (merged on top) any commit that was lost."
            ),
            CasClass::None => format!(
                "Class: none{because}. The server does not enforce preconditions: deltasync \
                 takes a lease lock (a file with a short expiry) around each commit and reads \
                 meta.json back after writing it."
            ),
        });
        if self.s3 && self.class == CasClass::None {
            out.push(
                "This S3 server accepts If-Match and If-None-Match: * and ignores them, as \
                 several S3-compatible servers do (s3rver, Garage; AWS, R2, recent MinIO and \
                 Ceph honour them): safe only while the lease holds, so prefer a provider that \
                 honours conditional writes."
                    .to_string(),
            );
        }
        if self.class != CasClass::Atomic
            && self.weak_window_ms > 0
            && self.class != CasClass::WeakWindow
        {
            out.push(format!(
                "It also waits {} ms after a write before an If-Match (weak ETags).",
                self.weak_window_ms
            ));
        }
        out
    }

    /// The verdict alone, as recorded in meta.json at `init`: the class and the weak-ETag
    /// window (meta.json is rewritten by every commit, so the full report stays out of it).
    pub fn summary_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cas": self.class.to_string(),
            "weakWindowMs": self.weak_window_ms,
        });
        if self.nextcloud {
            v["nextcloud"] = serde_json::Value::Bool(true);
        }
        v
    }

    /// The report as JSON (for `doctor --json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "remote": self.remote,
            "class": self.class.to_string(),
            "class_reasons": self.class_reasons,
            "weak_window_ms": self.weak_window_ms,
            "measured_window_ms": self.measured_window_ms,
            "etag_on_put": self.etag_on_put,
            "etag_in_put_answer": self.etag_in_put_answer,
            "etag_on_head": self.etag_on_head,
            "etag_strong": self.etag_strong,
            "etag_changes_on_rewrite": self.etag_changes_on_rewrite,
            "fresh_if_match_ok": self.fresh_if_match_ok,
            "stale_if_match_rejected": self.stale_if_match_rejected,
            "unknown_if_match_rejected": self.unknown_if_match_rejected,
            "if_match_missing_rejected": self.if_match_missing_rejected,
            "create_only_rejected": self.create_only_rejected,
            "conditional_get": self.conditional_get,
            "propfind_etags_match": self.propfind_etags_match,
            "mkcol_ok": self.mkcol_ok,
            "delete_ok": self.delete_ok,
            "race_threads": self.race_threads,
            "race_winners": self.race_winners,
            "create_race_winners": self.create_race_winners,
            "nextcloud": self.nextcloud,
            "s3": self.s3,
            "notes": self.notes,
            "elapsed_ms": self.elapsed_ms,
            "explain": self.explain(),
        })
    }
}

/// "3 rounds, one winner in each" or "2 rounds, winners per round 1, 3".
fn rounds_text(winners: &[usize]) -> String {
    let n = winners.len();
    let rounds = if n == 1 {
        "1 round".to_string()
    } else {
        format!("{n} rounds")
    };
    if winners.iter().all(|&w| w == 1) {
        format!("{rounds}, one winner in each")
    } else {
        let w: Vec<String> = winners.iter().map(|w| w.to_string()).collect();
        format!("{rounds}, winners per round {}", w.join(", "))
    }
}
