//! `deltasync.toml`, the workspace configuration.
//!
//! ```toml
//! remote = "file:///home/me/sync-remote"   # or https://…, nextcloud://user@host/path,
//!                                          # s3://bucket/prefix
//! device = "laptop"
//!
//! [auth]                                   # WebDAV only; the password is never stored here
//! user = "me"
//! password_env = "DELTASYNC_PASSWORD"      # or: password_command = "pass show nextcloud",
//!                                          # or: keyring = true (see `deltasync login`)
//!
//! [s3]                                     # s3:// only; AWS_ENDPOINT_URL(_S3), AWS_REGION win
//! endpoint = "https://minio.example.org"   # default: AWS in the region
//! region = "eu-west-1"                     # default us-east-1 (R2: auto)
//! path_style = true                        # default: true with an endpoint, false on AWS
//!
//! [collections.tasks]
//! kind = "dir"
//! path = "tasks"
//!
//! [collections.stadiums]
//! kind = "file"
//! path = "main.json"
//! pointer = "/stadium/entities"
//! id_field = "id"
//! strategy = "latest-wins"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::collections::CollectionKind;
use crate::merge::Strategy;

/// The file name of the configuration at the workspace root.
pub const CONFIG_FILE: &str = "deltasync.toml";

/// Errors of reading or writing the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value is not valid.
    #[error("{0}")]
    Invalid(String),
}

/// The configuration of a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The remote URL or folder.
    pub remote: String,
    /// A human name for this device.
    #[serde(default = "default_device")]
    pub device: String,
    /// Credentials for WebDAV and S3 remotes (never the password or secret key itself).
    #[serde(default, skip_serializing_if = "Auth::is_empty")]
    pub auth: Auth,
    /// Where an `s3://` remote's bucket is: endpoint, region, addressing style.
    #[serde(default, skip_serializing_if = "S3Settings::is_empty")]
    pub s3: S3Settings,
    /// Safety rails and tuning.
    #[serde(default)]
    pub sync: SyncSettings,
    /// Compaction: tombstone retention, orphan grace period, automatic compaction.
    #[serde(
        default,
        skip_serializing_if = "crate::maintenance::CompactSettings::is_default"
    )]
    pub compact: crate::maintenance::CompactSettings,
    /// What `doctor` found about the server (written by `init` and `doctor --save`); it
    /// decides how commits are made. Absent: WebDAV remotes are treated as non-atomic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSettings>,
    /// The collections, by name.
    #[serde(default)]
    pub collections: BTreeMap<String, CollectionConfig>,
}

fn default_device() -> String {
    "device".into()
}

/// Where the WebDAV password comes from. The password is never written to this file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// User name (Nextcloud: the login name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment variable holding the password (default `DELTASYNC_PASSWORD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Command printing the password (run with `sh -c`; `cmd /C` on Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_command: Option<String>,
    /// The password is in the system keyring (service `deltasync`, user name
    /// `user@host[:port]`), put there by `deltasync login` or `init --keyring`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyring: bool,
    /// Allow plain http to a host that is not this machine.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
}

impl Auth {
    fn is_empty(&self) -> bool {
        self == &Auth::default()
    }
}

/// Where an `s3://` remote's bucket is. The environment (`AWS_ENDPOINT_URL_S3`,
/// `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_DEFAULT_REGION`) takes precedence, as in AWS's tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The endpoint, for S3-compatible providers (MinIO, R2, Ceph); default: AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Path-style addressing (`ENDPOINT/BUCKET/KEY`); default: with a custom endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
}

impl S3Settings {
    fn is_empty(&self) -> bool {
        self == &S3Settings::default()
    }
}

/// How far the server's compare-and-swap can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `atomic`, `weak-window`, `non-atomic` or `none`.
    pub cas: String,
    /// For `weak-window`: how long after a write an If-Match fails, in ms.
    #[serde(default)]
    pub weak_window_ms: u64,
    /// The server answered as Nextcloud does (`OC-ETag`, `OC-FileId`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nextcloud: bool,
}

impl ServerSettings {
    /// The settings a verdict recorded in meta.json describes (`{"cas": …, "weakWindowMs": …,
    /// "nextcloud": true}`, [`deltasync_remote::ProbeReport::summary_json`]); `None` when it
    /// holds no class this version knows.
    pub fn from_recorded(v: &serde_json::Value) -> Option<ServerSettings> {
        let cas = v.get("cas")?.as_str()?.to_string();
        let settings = ServerSettings {
            cas,
            weak_window_ms: v.get("weakWindowMs").and_then(|w| w.as_u64()).unwrap_or(0),
            nextcloud: v
                .get("nextcloud")
                .and_then(|n| n.as_bool())
                .unwrap_or(false),
        };
        settings.capabilities().ok().map(|_| settings)
    }

    /// The weaker of two verdicts (a class once seen is never upgraded by a luckier probe):
    /// the lower class, the longer weak window, Nextcloud if either says so.
    pub fn weaker(self, other: &ServerSettings) -> ServerSettings {
        use deltasync_remote::CasClass;
        let rank = |s: &ServerSettings| match s.capabilities().map(|c| c.cas) {
            Ok(CasClass::Atomic) => 3,
            Ok(CasClass::WeakWindow) => 2,
            Ok(CasClass::NonAtomic) => 1,
            _ => 0,
        };
        let cas = if rank(other) < rank(&self) {
            other.cas.clone()
        } else {
            self.cas
        };
        ServerSettings {
            cas,
            weak_window_ms: self.weak_window_ms.max(other.weak_window_ms),
            nextcloud: self.nextcloud || other.nextcloud,
        }
    }

    /// The capabilities these settings describe.
    pub fn capabilities(&self) -> Result<deltasync_remote::Capabilities, ConfigError> {
        use deltasync_remote::CasClass;
        let cas = match self.cas.as_str() {
            "atomic" => CasClass::Atomic,
            "weak-window" => CasClass::WeakWindow,
            "non-atomic" => CasClass::NonAtomic,
            "none" => CasClass::None,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "server.cas = '{other}': expected atomic, weak-window, non-atomic or none"
                )));
            }
        };
        Ok(deltasync_remote::Capabilities {
            cas,
            weak_window_ms: self.weak_window_ms,
            ..deltasync_remote::Capabilities::default()
        })
    }
}

/// Safety rails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// A push deleting more than this share of a collection is refused…
    #[serde(default = "default_ratio")]
    pub mass_delete_ratio: f64,
    /// …when it also deletes more than this many entities.
    #[serde(default = "default_min")]
    pub mass_delete_min: u64,
}

fn default_ratio() -> f64 {
    0.5
}
fn default_min() -> u64 {
    10
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            mass_delete_ratio: default_ratio(),
            mass_delete_min: default_min(),
        }
    }
}

/// One collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// `dir` or `file`.
    pub kind: KindName,
    /// Folder (dir) or document (file), relative to the workspace.
    pub path: PathBuf,
    /// JSON pointer inside the document (file only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Id field of the objects in an array (file only; default `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
    /// Merge strategy.
    #[serde(default)]
    pub strategy: Strategy,
}

/// The kinds of collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// One file per entity.
    Dir,
    /// One document holding many entities.
    File,
}

impl CollectionConfig {
    /// The collection's kind as the collections module takes it.
    pub fn kind(&self) -> CollectionKind {
        match self.kind {
            KindName::Dir => CollectionKind::Dir {
                path: self.path.clone(),
            },
            KindName::File => CollectionKind::File {
                path: self.path.clone(),
                pointer: self.pointer.clone(),
                id_field: self.id_field.clone().unwrap_or_else(|| "id".into()),
                // An id field named in the configuration (`@id`, `id_field = …`) is for an
                // array of objects: a device that creates the collection makes an array too.
                create_as_array: self.id_field.is_some(),
            },
        }
    }

    /// Parses the `--collection` argument of `init`: `dir:PATH` or `file:PATH[#POINTER][@ID]`.
    pub fn parse_spec(spec: &str) -> Result<Self, ConfigError> {
        let bad = || {
            ConfigError::Invalid(format!(
                "invalid collection '{spec}': expected dir:PATH or file:PATH[#POINTER][@ID_FIELD]"
            ))
        };
        let (kind, rest) = spec.split_once(':').ok_or_else(bad)?;
        match kind {
            "dir" if !rest.is_empty() => Ok(CollectionConfig {
                kind: KindName::Dir,
                path: rest.into(),
                pointer: None,
                id_field: None,
                strategy: Strategy::default(),
            }),
            "file" => {
                let (rest, id_field) = match rest.rsplit_once('@') {
                    Some((r, id)) if !id.is_empty() => (r, Some(id.to_string())),
                    _ => (rest, None),
                };
                let (path, pointer) = match rest.split_once('#') {
                    Some((p, ptr)) => (p, Some(ptr.to_string())),
                    None => (rest, None),
                };
                if path.is_empty() {
                    return Err(bad());
                }
                if let Some(p) = &pointer
                    && !p.is_empty()
                    && !p.starts_with('/')
                {
                    return Err(ConfigError::Invalid(format!(
                        "invalid JSON pointer '{p}' in '{spec}': it must start with '/'"
                    )));
                }
                Ok(CollectionConfig {
                    kind: KindName::File,
                    path: path.into(),
                    pointer,
                    id_field,
                    strategy: Strategy::default(),
                })
            }
            _ => Err(bad()),
        }
    }
}

/// Where a collection keeps its entities, for comparing collections: the path's components
/// (in lower case: on Windows and macOS `Notes` and `notes` are one folder) and, for a `file`
/// collection, the JSON pointer's tokens.
struct Place<'a> {
    name: &'a str,
    config: &'a CollectionConfig,
    components: Vec<String>,
    tokens: Vec<String>,
}

impl Place<'_> {
    /// The path as configured, `/`-separated.
    fn path(&self) -> String {
        self.config
            .path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// How the collection is written in `--collection` form, for messages.
    fn spec(&self) -> String {
        match self.config.kind {
            KindName::Dir => format!("dir:{}", self.path()),
            KindName::File => match self.config.pointer.as_deref() {
                Some(p) if !p.is_empty() => format!("file:{}#{p}", self.path()),
                _ => format!("file:{}", self.path()),
            },
        }
    }
}

/// Names that are deltasync's own in a workspace, compared in lower case.
fn reserved(first: &str) -> Option<&'static str> {
    if first == crate::STATE_DIR.to_lowercase() {
        Some(".deltasync, deltasync's own state folder")
    } else if first == CONFIG_FILE {
        Some("deltasync.toml, deltasync's configuration file")
    } else {
        None
    }
}

/// Refuses collections that share files: two on one path (a `file` collection may share a
/// document with another at a pointer neither inside nor around its own), one inside another
/// (a folder holding another collection's folder or document), or one in deltasync's own
/// files (`.deltasync/`, `deltasync.toml`). Such collections would read each other's entities,
/// and a deletion in one would delete in the other.
fn check_places(collections: &BTreeMap<String, CollectionConfig>) -> Result<(), ConfigError> {
    let mut places = Vec::with_capacity(collections.len());
    for (name, c) in collections {
        let components: Vec<String> = c
            .path
            .components()
            .map(|p| p.as_os_str().to_string_lossy().to_lowercase())
            .collect();
        let Some(first) = components.first() else {
            return Err(ConfigError::Invalid(format!(
                "collection '{name}': its path is empty; name a folder or a document inside the workspace"
            )));
        };
        if let Some(what) = reserved(first) {
            let place = if components.len() == 1 {
                "is"
            } else {
                "is inside"
            };
            return Err(ConfigError::Invalid(format!(
                "collection '{name}': path '{}' {place} {what}; choose another path",
                c.path.display()
            )));
        }
        let tokens = match (c.kind, c.pointer.as_deref()) {
            (KindName::File, Some(p)) => crate::collections::parse_pointer(p)
                .map_err(|e| ConfigError::Invalid(format!("collection '{name}': {e}")))?,
            _ => Vec::new(),
        };
        places.push(Place {
            name,
            config: c,
            components,
            tokens,
        });
    }
    for (i, a) in places.iter().enumerate() {
        for b in &places[i + 1..] {
            let (outer, inner) = if a.components.len() <= b.components.len() {
                (a, b)
            } else {
                (b, a)
            };
            if !inner.components.starts_with(&outer.components) {
                continue;
            }
            if inner.components.len() > outer.components.len() {
                return Err(ConfigError::Invalid(format!(
                    "collections '{}' ({}) and '{}' ({}) overlap: {} is inside {}; give each \
                     collection a place of its own",
                    outer.name,
                    outer.spec(),
                    inner.name,
                    inner.spec(),
                    inner.path(),
                    outer.path()
                )));
            }
            // The same path (letter case aside).
            let both_documents = a.config.kind == KindName::File && b.config.kind == KindName::File;
            let (short, long) = if a.tokens.len() <= b.tokens.len() {
                (a, b)
            } else {
                (b, a)
            };
            if both_documents && !long.tokens.starts_with(&short.tokens) {
                // Different parts of one document.
                continue;
            }
            let case = if a.path() == b.path() {
                String::new()
            } else {
                format!(
                    " ({} and {} are one on Windows and macOS)",
                    a.path(),
                    b.path()
                )
            };
            let what = if !both_documents {
                format!("both use the path {}{case}", b.path())
            } else if short.tokens.len() == long.tokens.len() {
                format!(
                    "both use {}{case} at the same JSON pointer {}",
                    b.path(),
                    match b.config.pointer.as_deref() {
                        Some(p) if !p.is_empty() => p,
                        _ => "(the root)",
                    }
                )
            } else {
                format!(
                    "both use {}{case}, and the pointer {} is inside {}",
                    b.path(),
                    long.config.pointer.as_deref().unwrap_or(""),
                    match short.config.pointer.as_deref() {
                        Some(p) if !p.is_empty() => p,
                        _ => "the whole document",
                    }
                )
            };
            return Err(ConfigError::Invalid(format!(
                "collections '{}' ({}) and '{}' ({}) {what}; give each collection a place of \
                 its own",
                a.name,
                a.spec(),
                b.name,
                b.spec()
            )));
        }
    }
    Ok(())
}

impl Config {
    /// Reads `deltasync.toml` from a workspace.
    pub fn load(workspace: &Path) -> Result<Self, ConfigError> {
        let path = workspace.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.clone(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks names and paths.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, c) in &self.collections {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return Err(ConfigError::Invalid(format!(
                    "collection name '{name}': use letters, digits, '-' and '_'"
                )));
            }
            if c.path.is_absolute()
                || c.path
                    .components()
                    .any(|p| !matches!(p, std::path::Component::Normal(_)))
            {
                return Err(ConfigError::Invalid(format!(
                    "collection '{name}': path '{}' must be relative and inside the workspace",
                    c.path.display()
                )));
            }
        }
        check_places(&self.collections)?;
        if let Some(server) = &self.server {
            server.capabilities()?;
        }
        let sources = [
            self.auth.password_env.is_some().then_some("password_env"),
            self.auth
                .password_command
                .is_some()
                .then_some("password_command"),
            self.auth.keyring.then_some("keyring"),
        ];
        let named: Vec<&str> = sources.into_iter().flatten().collect();
        if named.len() > 1 {
            return Err(ConfigError::Invalid(format!(
                "[auth] names more than one place for the password ({}): keep one",
                named.join(", ")
            )));
        }
        if !(0.0..=1.0).contains(&self.sync.mass_delete_ratio) {
            return Err(ConfigError::Invalid(
                "sync.mass_delete_ratio must be between 0 and 1".into(),
            ));
        }
        Ok(())
    }

    /// Writes `deltasync.toml` into a workspace, atomically; an existing file keeps its
    /// comments and layout (toml_edit), with only the values that changed rewritten.
    pub fn save(&self, workspace: &Path) -> Result<(), ConfigError> {
        let path = workspace.join(CONFIG_FILE);
        let fresh = toml::to_string(self).map_err(|e| ConfigError::Invalid(format!("{e}")))?;
        let text = match std::fs::read_to_string(&path) {
            // The person's file: the new values go in, their comments and layout stay.
            Ok(old) => match (
                old.parse::<toml_edit::DocumentMut>(),
                fresh.parse::<toml_edit::DocumentMut>(),
            ) {
                (Ok(mut doc), Ok(new)) => {
                    merge_table(doc.as_table_mut(), new.as_table());
                    doc.to_string()
                }
                _ => format!("{HEADER}{fresh}"),
            },
            Err(_) => format!("{HEADER}{fresh}"),
        };
        write_atomically(&path, text.as_bytes()).map_err(|source| ConfigError::Io { path, source })
    }

    /// The names of the collections, for error messages.
    pub fn collection_names(&self) -> String {
        self.collections
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a new deltasync.toml starts with.
const HEADER: &str = "# deltasync workspace configuration: see `deltasync --help` and the README.\n\
     # Passwords are never stored here: use auth.keyring (deltasync login), auth.password_env\n\
     # or auth.password_command.\n";

/// Makes `old` hold what `new` holds, keeping the comments and formatting of what stays:
/// values are replaced in place (with their comments), tables merged, keys `new` lacks removed.
fn merge_table(old: &mut toml_edit::Table, new: &toml_edit::Table) {
    let gone: Vec<String> = old
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| !new.contains_key(k))
        .collect();
    for k in gone {
        old.remove(&k);
    }
    for (k, item) in new.iter() {
        match (old.get_mut(k), item) {
            (Some(toml_edit::Item::Table(o)), toml_edit::Item::Table(n)) => merge_table(o, n),
            (Some(toml_edit::Item::Value(o)), toml_edit::Item::Value(n)) => {
                if o.to_string().trim() != n.to_string().trim() {
                    let decor = o.decor().clone();
                    *o = n.clone();
                    *o.decor_mut() = decor;
                }
            }
            (Some(slot), _) => *slot = item.clone(),
            (None, _) => {
                old.insert(k, item.clone());
            }
        }
    }
}

/// Writes `path` whole or not at all: a temp file beside it, flushed, renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("toml.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: saving rewrote deltasync.toml from scratch, non-atomically, dropping the
    /// person's comments.
    #[test]
    fn save_keeps_comments_and_changes_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# my sync setup\nremote = \"/tmp/r\" # the NAS\ndevice = \"laptop\"\n\n\
                    # my tasks\n[collections.tasks]\nkind = \"dir\"\npath = \"tasks\" # app folder\n";
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        let mut c = Config::load(dir.path()).unwrap();
        c.device = "work laptop".into();
        c.save(dir.path()).unwrap();
        let saved = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        for kept in ["# my sync setup", "# the NAS", "# my tasks", "# app folder"] {
            assert!(saved.contains(kept), "{kept:?} lost:\n{saved}");
        }
        assert!(saved.contains("device = \"work laptop\""), "{saved}");
        assert_eq!(Config::load(dir.path()).unwrap(), c);
        assert!(!dir.path().join("deltasync.toml.tmp").exists());
        // A fresh file gets the header.
        let fresh = tempfile::tempdir().unwrap();
        c.save(fresh.path()).unwrap();
        let t = std::fs::read_to_string(fresh.path().join(CONFIG_FILE)).unwrap();
        assert!(t.starts_with("# deltasync workspace configuration"), "{t}");
        assert_eq!(Config::load(fresh.path()).unwrap(), c);
    }

    #[test]
    fn specs() {
        let d = CollectionConfig::parse_spec("dir:tasks").unwrap();
        assert_eq!(d.kind, KindName::Dir);
        let f = CollectionConfig::parse_spec("file:main.json#/task/entities@uid").unwrap();
        assert_eq!(f.pointer.as_deref(), Some("/task/entities"));
        assert_eq!(f.id_field.as_deref(), Some("uid"));
        assert!(CollectionConfig::parse_spec("foo:x").is_err());
        assert!(CollectionConfig::parse_spec("file:main.json#task").is_err());
    }

    #[test]
    fn paths_must_stay_inside() {
        let mut c = Config {
            remote: "/tmp/r".into(),
            device: "d".into(),
            auth: Auth::default(),
            s3: S3Settings::default(),
            sync: SyncSettings::default(),
            compact: Default::default(),
            server: None,
            collections: BTreeMap::new(),
        };
        c.collections.insert(
            "t".into(),
            CollectionConfig::parse_spec("dir:../x").unwrap(),
        );
        assert!(c.validate().is_err());
        c.collections
            .insert("t".into(), CollectionConfig::parse_spec("dir:x/y").unwrap());
        c.validate().unwrap();
    }

    #[test]
    fn s3_settings_are_read_and_kept_out_when_empty() {
        let c: Config = toml::from_str(
            "remote = \"s3://b/n\"\n[s3]\nendpoint = \"https://minio.example.org\"\nregion = \"eu-west-1\"\npath_style = true\n",
        )
        .unwrap();
        assert_eq!(c.s3.endpoint.as_deref(), Some("https://minio.example.org"));
        assert_eq!(c.s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.s3.path_style, Some(true));
        assert!(toml::from_str::<Config>("remote = \"s3://b\"\n[s3]\nbogus = 1\n").is_err());
        let plain: Config = toml::from_str("remote = \"/tmp/r\"\n").unwrap();
        assert!(!toml::to_string(&plain).unwrap().contains("[s3]"));
    }

    #[test]
    fn one_password_source_at_most() {
        let mut c: Config =
            toml::from_str("remote = \"https://h/x\"\n[auth]\nkeyring = true\n").unwrap();
        c.validate().unwrap();
        assert!(c.auth.keyring);
        c.auth.password_command = Some("pass show x".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("password_command, keyring"), "{e}");
        c.auth.keyring = false;
        c.validate().unwrap();
    }
}
