//! The WebDAV side of the Nextcloud stand-in: the file cache kept beside the files on disk,
//! the per-path locks, and one function per method (see the rules in the parent module).

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{
    DAV_PREFIX, Entry, LEGACY_PREFIX, Reply, Req, Shared, State, TrashItem, USER, decode, now_secs,
    relative_path, xml_escape,
};

/// What sabre/dav leaves unencoded in hrefs (`encodePath`): `A-Za-z0-9_-.~()/:@`, per segment.
const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'(')
    .remove(b')')
    .remove(b':')
    .remove(b'@');

const FILE_LOCKED: &str = "OCA\\DAV\\Connector\\Sabre\\Exception\\FileLocked";

/// Answers a WebDAV request for `rel` (decoded, relative to the user's root; `""` is the root)
/// from an authenticated user.
pub(super) fn dispatch(sh: &Shared, req: &Req, rel: &str) -> Reply {
    match req.method.as_str() {
        "GET" => get(sh, req, rel, false),
        "HEAD" => get(sh, req, rel, true),
        "PUT" => put(sh, req, rel),
        "DELETE" => delete(sh, req, rel),
        "MKCOL" => mkcol(sh, req, rel),
        "MOVE" => move_to(sh, req, rel),
        "PROPFIND" => propfind(sh, req, rel),
        "OPTIONS" => Reply::new(200)
            .header("DAV", "1, 3, extended-mkcol, nextcloud-checksum-update")
            .header(
                "Allow",
                "OPTIONS, GET, HEAD, DELETE, PROPFIND, PUT, MKCOL, MOVE",
            )
            .header("MS-Author-Via", "DAV")
            .header("Accept-Ranges", "bytes"),
        m => Reply::sabre(
            501,
            "Sabre\\DAV\\Exception\\NotImplemented",
            &format!(
                "There was no plugin in the system that was willing to handle this {m} method."
            ),
        ),
    }
}

fn not_found(rel: &str) -> Reply {
    Reply::sabre(
        404,
        "Sabre\\DAV\\Exception\\NotFound",
        &format!("File with name {rel} could not be located"),
    )
}

fn locked(rel: &str) -> Reply {
    Reply::sabre(423, FILE_LOCKED, &format!("\"{rel}\" is locked"))
}

fn conflict(message: &str) -> Reply {
    Reply::sabre(409, "Sabre\\DAV\\Exception\\Conflict", message)
}

fn precondition_failed(message: &str, header: &str) -> Reply {
    let mut r = Reply::sabre(412, "Sabre\\DAV\\Exception\\PreconditionFailed", message);
    // sabre/dav names the header that failed.
    let body = String::from_utf8_lossy(&r.body).replace(
        "</s:message>",
        &format!("</s:message>\n  <s:header>{header}</s:header>"),
    );
    r.body = body.into_bytes();
    r
}

fn internal(e: &std::io::Error) -> Reply {
    Reply::sabre(500, "Sabre\\DAV\\Exception", &e.to_string())
}

fn parent_of(rel: &str) -> &str {
    rel.rfind('/').map(|i| &rel[..i]).unwrap_or("")
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn is_under(path: &str, rel: &str) -> bool {
    rel.is_empty() || path == rel || (path.starts_with(rel) && path[rel.len()..].starts_with('/'))
}

fn http_date(secs: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64))
}

fn content_type(rel: &str) -> &'static str {
    let ext = rel.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => "application/json",
        Some("txt" | "md") => "text/plain",
        Some("xml") => "application/xml",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Whether a `If-Match`/`If-None-Match` list names this entry (`*`, or its quoted ETag, the
/// way sabre/dav compares: exactly, after trimming spaces).
fn list_matches(list: &str, entry: &Entry) -> bool {
    let quoted = format!("\"{}\"", entry.etag);
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == quoted)
}

/// The outcome of checking a request's preconditions against the cache.
enum Precondition {
    Pass,
    NotModified,
    Failed(Reply),
}

fn preconditions(req: &Req, entry: Option<&Entry>, reading: bool) -> Precondition {
    if let Some(list) = req.header("If-Match") {
        match entry {
            None => {
                return Precondition::Failed(precondition_failed(
                    "An If-Match header was specified and the resource did not exist",
                    "If-Match",
                ));
            }
            Some(e) if !list_matches(list, e) => {
                return Precondition::Failed(precondition_failed(
                    "An If-Match header was specified, but none of the specified ETags matched.",
                    "If-Match",
                ));
            }
            Some(_) => {}
        }
    }
    if let (Some(list), Some(e)) = (req.header("If-None-Match"), entry)
        && list_matches(list, e)
    {
        if reading {
            return Precondition::NotModified;
        }
        return Precondition::Failed(precondition_failed(
            "An If-None-Match header was specified, but the ETag matched (or * was specified).",
            "If-None-Match",
        ));
    }
    Precondition::Pass
}

/// Takes the path's exclusive lock off again when dropped.
struct PathLock<'a> {
    sh: &'a Shared,
    rel: String,
}

impl Drop for PathLock<'_> {
    fn drop(&mut self) {
        self.sh.state().locks.remove(&self.rel);
    }
}

impl Shared {
    fn abs(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.files.clone()
        } else {
            self.files.join(rel)
        }
    }

    fn oc_id(&self, fileid: u64) -> String {
        format!("{fileid:08}{}", self.instance_id)
    }

    /// The cache entry of `rel`, in step with the disk: a path gone from disk leaves the
    /// cache, and one the cache does not know yet (or whose kind changed) gets a new entry.
    fn lookup(&self, st: &mut State, rel: &str) -> Option<Entry> {
        let Ok(meta) = fs::symlink_metadata(self.abs(rel)) else {
            st.cache.remove(rel);
            return None;
        };
        let dir = meta.is_dir();
        if let Some(e) = st.cache.get(rel)
            && e.dir == dir
        {
            return Some(e.clone());
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
            .unwrap_or_else(now_secs);
        st.next_fileid += 1;
        let e = Entry {
            etag: self.new_etag(),
            mtime,
            fileid: st.next_fileid,
            size: if dir { 0 } else { meta.len() },
            dir,
            writes: 0,
            etag_writes: 0,
        };
        st.cache.insert(rel.to_string(), e.clone());
        Some(e)
    }

    fn is_dir(&self, st: &mut State, rel: &str) -> bool {
        self.lookup(st, rel).is_some_and(|e| e.dir)
    }

    /// A change below `rel`'s parent: every ancestor folder gets a new ETag and mtime.
    fn touch_ancestors(&self, st: &mut State, rel: &str) {
        let mut p = rel;
        while !p.is_empty() {
            p = parent_of(p);
            if self.lookup(st, p).is_some() {
                let etag = self.new_etag();
                if let Some(e) = st.cache.get_mut(p) {
                    e.etag = etag;
                    e.mtime = now_secs();
                }
            }
        }
    }

    fn forget(st: &mut State, rel: &str) {
        st.cache.retain(|k, _| !is_under(k, rel));
    }

    fn locked_under(st: &State, rel: &str) -> bool {
        st.locks.iter().any(|l| is_under(l, rel))
    }

    /// Moves `rel` (file or folder) into the trash bin.
    fn to_trash(&self, st: &mut State, rel: &str) -> std::io::Result<()> {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let now = now_secs();
        let mut dest = self.trash_dir.join(format!("{name}.d{now}"));
        let mut n = 1;
        while fs::symlink_metadata(&dest).is_ok() {
            n += 1;
            dest = self.trash_dir.join(format!("{name}.d{now}.{n}"));
        }
        fs::rename(self.abs(rel), &dest)?;
        st.trash.push(TrashItem {
            original: rel.to_string(),
        });
        Ok(())
    }

    /// Keeps the current content of file `rel` as an old version.
    fn keep_version(&self, st: &mut State, rel: &str, mtime: i64) -> std::io::Result<()> {
        let src = self.abs(rel);
        let size = fs::metadata(&src)?.len();
        let mut dest = self.versions_dir.join(format!("{rel}.v{mtime}"));
        let mut n = 1;
        while fs::symlink_metadata(&dest).is_ok() {
            n += 1;
            dest = self.versions_dir.join(format!("{rel}.v{mtime}.{n}"));
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        // A hard link: the file stays in place until the new content is renamed over it.
        fs::hard_link(&src, &dest).or_else(|_| fs::copy(&src, &dest).map(|_| ()))?;
        st.versions.0 += 1;
        st.versions.1 += size;
        Ok(())
    }

    /// `ETag`, `OC-ETag`, `OC-FileId` and `Last-Modified` of an entry.
    fn file_headers(&self, r: Reply, e: &Entry) -> Reply {
        let etag = format!("\"{}\"", e.etag);
        r.header("ETag", etag.clone())
            .header("OC-ETag", etag)
            .header("OC-FileId", self.oc_id(e.fileid))
            .header("Last-Modified", http_date(e.mtime))
    }
}

fn get(sh: &Shared, req: &Req, rel: &str, head: bool) -> Reply {
    let mut st = sh.state();
    let Some(e) = sh.lookup(&mut st, rel) else {
        return not_found(rel);
    };
    if st.locks.contains(rel) {
        return locked(rel);
    }
    if e.dir {
        // sabre/dav: nobody handles a GET of a folder (501); a HEAD turns that into an empty
        // 200 without ETag or length of its own.
        if head {
            return Reply::new(200)
                .body("text/plain", "")
                .header("X-Sabre-Real-Status", "501");
        }
        return Reply::sabre(
            501,
            "Sabre\\DAV\\Exception\\NotImplemented",
            "There was no plugin in the system that was willing to handle this GET method. Enable the Browser plugin to get a better result here.",
        );
    }
    match preconditions(req, Some(&e), true) {
        Precondition::Pass => {}
        Precondition::Failed(r) => return r,
        Precondition::NotModified => {
            if e.writes != e.etag_writes {
                st.stats.stale_304 += 1;
            }
            return sh.file_headers(Reply::new(304), &e);
        }
    }
    drop(st);
    match fs::read(sh.abs(rel)) {
        Ok(data) => sh.file_headers(Reply::new(200).body(content_type(rel), data), &e),
        Err(_) => not_found(rel),
    }
}

/// `X-OC-MTime` as whole seconds (Nextcloud takes any number and drops the fraction).
fn parse_mtime(v: &str) -> Option<i64> {
    let v = v.trim();
    v.parse::<i64>().ok().or_else(|| {
        v.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
    })
}

fn put(sh: &Shared, req: &Req, rel: &str) -> Reply {
    let mtime_header = req.header("X-OC-MTime");
    let mtime = match mtime_header.map(parse_mtime) {
        None => None,
        Some(Some(m)) => Some(m),
        Some(None) => {
            return Reply::sabre(
                400,
                "Sabre\\DAV\\Exception\\BadRequest",
                "X-OC-MTime header must be an integer (unix timestamp).",
            );
        }
    };
    // 1. The precondition, against the cache.
    let created = {
        let mut st = sh.state();
        if rel.is_empty() {
            return conflict("PUT is not allowed on non-files.");
        }
        if !sh.is_dir(&mut st, parent_of(rel)) {
            return conflict("Parent node does not exist");
        }
        // A cold file cache: only a PUT that could otherwise store counts (a missing parent
        // is a 409 all the same).
        if st.cold > 0 {
            st.cold -= 1;
            return not_found(rel);
        }
        let e = sh.lookup(&mut st, rel);
        if e.as_ref().is_some_and(|e| e.dir) {
            return conflict("PUT is not allowed on non-files.");
        }
        if let Precondition::Failed(r) = preconditions(req, e.as_ref(), false) {
            return r;
        }
        e.is_none()
    };
    // 2. Receiving the body into a part file, without any lock.
    let write = sh.opts.write_delay;
    std::thread::sleep(sh.rng(|r| write.mul_f64(r.f64() * 1.25)));
    let part = {
        let mut st = sh.state();
        st.uploads += 1;
        sh.uploads_dir.join(format!("upload-{}.part", st.uploads))
    };
    if let Err(e) = fs::write(&part, &req.body) {
        return internal(&e);
    }
    // 3. The exclusive lock: held by another request means 423 at once.
    let _lock = {
        let mut st = sh.state();
        if st.locks.contains(rel) {
            drop(st);
            let _ = fs::remove_file(&part);
            let creator = req.header("If-None-Match").is_some_and(|v| v.trim() == "*");
            if !creator {
                return locked(rel);
            }
            return match sh.rng(|r| r.u8(..3)) {
                0 => Reply::sabre(
                    403,
                    "Sabre\\DAV\\Exception\\Forbidden",
                    &format!("Could not create file {rel}"),
                ),
                1 => not_found(rel),
                _ => locked(rel),
            };
        }
        st.locks.insert(rel.to_string());
        PathLock {
            sh,
            rel: rel.to_string(),
        }
    };
    // 4. The write, holding the lock; then store and update the cache.
    std::thread::sleep(write);
    let mut st = sh.state();
    let fail = |e: std::io::Error| {
        let _ = fs::remove_file(&part);
        internal(&e)
    };
    if !sh.is_dir(&mut st, parent_of(rel)) {
        let _ = fs::remove_file(&part);
        return conflict("Parent node does not exist");
    }
    let old = sh.lookup(&mut st, rel);
    if old.as_ref().is_some_and(|o| o.dir) {
        let _ = fs::remove_file(&part);
        return conflict("PUT is not allowed on non-files.");
    }
    let mtime = mtime.unwrap_or_else(now_secs);
    if let Some(o) = &old
        && let Err(e) = sh.keep_version(&mut st, rel, o.mtime)
    {
        return fail(e);
    }
    let set_mtime = fs::File::options()
        .write(true)
        .open(&part)
        .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime.max(0) as u64)));
    if let Err(e) = set_mtime.and_then(|_| fs::rename(&part, sh.abs(rel))) {
        return fail(e);
    }
    let size = req.body.len() as u64;
    let entry = match old {
        Some(mut o) => {
            o.writes += 1;
            if o.mtime != mtime {
                o.etag = sh.new_etag();
                o.etag_writes = o.writes;
            }
            o.mtime = mtime;
            o.size = size;
            o
        }
        None => {
            st.next_fileid += 1;
            Entry {
                etag: sh.new_etag(),
                mtime,
                fileid: st.next_fileid,
                size,
                dir: false,
                writes: 0,
                etag_writes: 0,
            }
        }
    };
    st.cache.insert(rel.to_string(), entry.clone());
    sh.touch_ancestors(&mut st, rel);
    drop(st);
    let mut r = sh.file_headers(Reply::new(if created { 201 } else { 204 }), &entry);
    if mtime_header.is_some() {
        r = r.header("X-OC-MTime", "accepted");
    }
    r
}

fn delete(sh: &Shared, req: &Req, rel: &str) -> Reply {
    if rel.is_empty() {
        return Reply::sabre(
            403,
            "Sabre\\DAV\\Exception\\Forbidden",
            "Could not delete the home folder",
        );
    }
    let mut st = sh.state();
    let Some(e) = sh.lookup(&mut st, rel) else {
        return not_found(rel);
    };
    if Shared::locked_under(&st, rel) {
        return locked(rel);
    }
    if let Precondition::Failed(r) = preconditions(req, Some(&e), false) {
        return r;
    }
    let skip = req
        .header("X-NC-Skip-Trashbin")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let path = sh.abs(rel);
    let done = if skip {
        let r = if e.dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        r.map(|_| st.stats.deletes_skipping_trash += 1)
    } else {
        sh.to_trash(&mut st, rel)
            .map(|_| st.stats.deletes_to_trash += 1)
    };
    if let Err(e) = done {
        return internal(&e);
    }
    Shared::forget(&mut st, rel);
    sh.touch_ancestors(&mut st, rel);
    Reply::new(204)
}

fn mkcol(sh: &Shared, req: &Req, rel: &str) -> Reply {
    if !req.body.is_empty() {
        return Reply::sabre(
            415,
            "Sabre\\DAV\\Exception\\UnsupportedMediaType",
            "The request body for the MKCOL request must have an xml Content-Type",
        );
    }
    let mut st = sh.state();
    if rel.is_empty() || sh.lookup(&mut st, rel).is_some() {
        return Reply::sabre(
            405,
            "Sabre\\DAV\\Exception\\MethodNotAllowed",
            "The resource you tried to create already exists",
        );
    }
    if !sh.is_dir(&mut st, parent_of(rel)) {
        return conflict("Parent node does not exist");
    }
    if Shared::locked_under(&st, rel) {
        return locked(rel);
    }
    if let Err(e) = fs::create_dir(sh.abs(rel)) {
        return internal(&e);
    }
    let e = sh.lookup(&mut st, rel);
    sh.touch_ancestors(&mut st, rel);
    let mut r = Reply::new(201);
    if let Some(e) = e {
        r = r.header("OC-FileId", sh.oc_id(e.fileid));
    }
    r
}

/// The decoded relative path a `Destination` header names, or the error to answer.
fn destination(req: &Req) -> Result<String, Reply> {
    let Some(dest) = req.header("Destination") else {
        return Err(Reply::sabre(
            400,
            "Sabre\\DAV\\Exception\\BadRequest",
            "The destination header was not supplied",
        ));
    };
    let dest = dest.trim();
    let path = match dest
        .strip_prefix("http://")
        .or_else(|| dest.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => dest,
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let out_of_base = || {
        Reply::sabre(
            403,
            "Sabre\\DAV\\Exception\\Forbidden",
            &format!("Requested uri ({path}) is out of base uri"),
        )
    };
    let rest = if let Some(rest) = path.strip_prefix(DAV_PREFIX) {
        let (user, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if decode(user).as_deref() != Some(USER) {
            return Err(out_of_base());
        }
        rest
    } else if let Some(rest) = path.strip_prefix(LEGACY_PREFIX) {
        rest
    } else {
        return Err(out_of_base());
    };
    relative_path(rest).ok_or_else(|| {
        Reply::sabre(
            400,
            "Sabre\\DAV\\Exception\\BadRequest",
            "Invalid destination",
        )
    })
}

fn move_to(sh: &Shared, req: &Req, rel: &str) -> Reply {
    let dst = match destination(req) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let overwrite = req
        .header("Overwrite")
        .is_none_or(|v| !v.trim().eq_ignore_ascii_case("f"));
    let mut st = sh.state();
    let Some(src) = sh.lookup(&mut st, rel) else {
        return not_found(rel);
    };
    if rel.is_empty() || dst.is_empty() || dst == rel {
        return Reply::sabre(
            403,
            "Sabre\\DAV\\Exception\\Forbidden",
            "Source and destination uri are identical, or one is the home folder.",
        );
    }
    if is_under(&dst, rel) {
        return conflict("Cannot move a folder into itself");
    }
    if !sh.is_dir(&mut st, parent_of(&dst)) {
        return conflict("The destination node is not found");
    }
    let existing = sh.lookup(&mut st, &dst);
    if existing.is_some() && !overwrite {
        return precondition_failed(
            "The destination node already exists, and the overwrite header is set to false",
            "Overwrite",
        );
    }
    if Shared::locked_under(&st, rel) || Shared::locked_under(&st, &dst) {
        return locked(rel);
    }
    if let Precondition::Failed(r) = preconditions(req, Some(&src), false) {
        return r;
    }
    if existing.is_some() {
        if let Err(e) = sh.to_trash(&mut st, &dst) {
            return internal(&e);
        }
        Shared::forget(&mut st, &dst);
    }
    if let Err(e) = fs::rename(sh.abs(rel), sh.abs(&dst)) {
        return internal(&e);
    }
    // The cache entries move along: ETags and fileids stay.
    let moved: Vec<String> = st
        .cache
        .keys()
        .filter(|k| is_under(k, rel))
        .cloned()
        .collect();
    for k in moved {
        if let Some(e) = st.cache.remove(&k) {
            st.cache.insert(format!("{dst}{}", &k[rel.len()..]), e);
        }
    }
    sh.touch_ancestors(&mut st, rel);
    sh.touch_ancestors(&mut st, &dst);
    Reply::new(if existing.is_some() { 204 } else { 201 })
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

fn propfind(sh: &Shared, req: &Req, rel: &str) -> Reply {
    // Nextcloud turns `Depth: infinity` (and a missing Depth) into 1.
    let depth1 = req.header("Depth").map(str::trim) != Some("0");
    let mut st = sh.state();
    let Some(e) = sh.lookup(&mut st, rel) else {
        return not_found(rel);
    };
    let mut items = vec![(rel.to_string(), e.clone())];
    if e.dir && depth1 {
        let mut names: Vec<String> = fs::read_dir(sh.abs(rel))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|d| d.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for name in names {
            let child = join(rel, &name);
            if let Some(ce) = sh.lookup(&mut st, &child) {
                items.push((child, ce));
            }
        }
    }
    drop(st);
    let prefix = if req.path.starts_with(LEGACY_PREFIX) {
        format!("{LEGACY_PREFIX}/")
    } else {
        format!("{DAV_PREFIX}{USER}/")
    };
    let mut xml = String::from(
        "<?xml version=\"1.0\"?>\n<d:multistatus xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\" xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\">",
    );
    for (path, e) in items {
        let mut href = prefix.clone();
        let encoded: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| utf8_percent_encode(s, HREF).to_string())
            .collect();
        href.push_str(&encoded.join("/"));
        if e.dir && !path.is_empty() {
            href.push('/');
        }
        let mut props = format!(
            "<d:getlastmodified>{}</d:getlastmodified>",
            http_date(e.mtime)
        );
        if e.dir {
            props.push_str("<d:resourcetype><d:collection/></d:resourcetype>");
        } else {
            props.push_str(&format!(
                "<d:getcontentlength>{}</d:getcontentlength><d:resourcetype/><d:getcontenttype>{}</d:getcontenttype>",
                e.size,
                content_type(&path)
            ));
        }
        let size = if e.dir {
            dir_size(&sh.abs(&path))
        } else {
            e.size
        };
        props.push_str(&format!(
            "<d:getetag>{}</d:getetag><oc:fileid>{}</oc:fileid><oc:id>{}</oc:id><oc:size>{size}</oc:size>",
            xml_escape(&format!("\"{}\"", e.etag)),
            e.fileid,
            sh.oc_id(e.fileid),
        ));
        xml.push_str(&format!(
            "<d:response><d:href>{}</d:href><d:propstat><d:prop>{props}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>",
            xml_escape(&href)
        ));
    }
    xml.push_str("</d:multistatus>\n");
    Reply::new(207).body("application/xml; charset=utf-8", xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_encode_like_sabre() {
        let s: String = utf8_percent_encode("a b+c%&#?é(x):@~.txt", HREF).to_string();
        assert_eq!(s, "a%20b%2Bc%25%26%23%3F%C3%A9(x):@~.txt");
    }

    #[test]
    fn paths_nest() {
        assert!(is_under("a/b", "a"));
        assert!(is_under("a", "a"));
        assert!(!is_under("ab", "a"));
        assert!(is_under("x", ""));
        assert_eq!(parent_of("a/b/c"), "a/b");
        assert_eq!(parent_of("a"), "");
        assert_eq!(parse_mtime(" 1700000000 "), Some(1_700_000_000));
        assert_eq!(parse_mtime("1700000000.7"), Some(1_700_000_000));
        assert_eq!(parse_mtime("soon"), None);
    }
}
