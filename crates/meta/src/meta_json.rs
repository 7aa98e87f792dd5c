//! `meta.json`, the commit point: `Meta`, the entries it lists and the unknown fields it keeps.

use super::*;

/// Collection name → entity id → version.
pub type VersionMap = BTreeMap<String, BTreeMap<String, u64>>;

/// The snapshot a meta refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    /// Generation number; 0 is the first snapshot written by `init`.
    pub generation: u64,
    /// File name at the remote root.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the file (hex).
    pub sha256: String,
    /// The commit sequence number the snapshot includes (all deltas up to it are folded).
    pub head: u64,
}

/// A delta referenced by meta.
///
/// Where format 2 names a delta — the entry of its meta.json, a delta's
/// [`prev`](crate::Delta::prev) — it writes only the fields that find and verify the file
/// (`path`, `seq`, `size`, `sha256`: [`DeltaRef::same_file`]); `device`, `time` and `entities`
/// are read back as empty and filled from the delta itself when the store completes the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaRef {
    /// Path relative to the remote root, e.g. `deltas/g0/<device>-<ms>-<rand>.json`.
    pub path: String,
    /// The commit sequence number this delta is.
    pub seq: u64,
    /// Device id that wrote it (empty in a format-2 link until the delta is read).
    #[serde(default)]
    pub device: String,
    /// Wall-clock time of the commit, ms since the Unix epoch (0 in a format-2 link until the
    /// delta is read).
    #[serde(default)]
    pub time: u64,
    /// Number of entity records in it (0 in a format-2 link until the delta is read).
    #[serde(default)]
    pub entities: u64,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the file (hex).
    pub sha256: String,
}

impl DeltaRef {
    /// Whether both name the same file with the same content (path, seq, size and sha256:
    /// what a format-2 link holds).
    pub fn same_file(&self, other: &DeltaRef) -> bool {
        self.path == other.path
            && self.seq == other.seq
            && self.size == other.size
            && self.sha256.eq_ignore_ascii_case(&other.sha256)
    }

    /// Whether `device`, `time` and `entities` are known (a format-2 link leaves them out).
    pub fn has_details(&self) -> bool {
        !self.device.is_empty()
    }

    /// Takes `device`, `time` and `entities` from the delta this names.
    pub fn fill_details(&mut self, delta: &crate::Delta) {
        self.device = delta.device.clone();
        self.time = delta.time;
        self.entities = delta.records.len() as u64;
    }
}

/// A format-2 link to a delta: the fields of a [`DeltaRef`] that find and verify the file.
#[derive(Serialize)]
struct Link<'a> {
    path: &'a str,
    seq: u64,
    size: u64,
    sha256: &'a str,
}

impl<'a> From<&'a DeltaRef> for Link<'a> {
    fn from(r: &'a DeltaRef) -> Self {
        Link {
            path: &r.path,
            seq: r.seq,
            size: r.size,
            sha256: &r.sha256,
        }
    }
}

/// A delta entry of meta.json as written: in full (format 1, the local copy) or as a link.
#[derive(Serialize)]
#[serde(untagged)]
enum Entry<'a> {
    Full(&'a DeltaRef),
    Link(Link<'a>),
}

/// `Delta::prev` as written: a link.
pub(crate) mod link {
    use super::{DeltaRef, Link};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(r: &Option<DeltaRef>, s: S) -> Result<S::Ok, S::Error> {
        r.as_ref().map(Link::from).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DeltaRef>, D::Error> {
        Option::<DeltaRef>::deserialize(d)
    }
}

/// What meta knows of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    /// Human name given at `init`.
    pub name: String,
    /// Last commit time of this device, ms since the Unix epoch.
    pub last_commit: u64,
}

/// `meta.json`: the commit point. In format 2 its size is bounded (it lists only the newest
/// delta); in format 1 it grows with the changes since the last compaction, never with the
/// number of entities.
///
/// In memory, [`Meta::deltas`] lists every delta since the snapshot once the store has
/// completed it ([`Meta::is_complete`]); [`Meta::to_bytes`] writes the remote's form,
/// [`Meta::to_local_bytes`] the complete one.
///
/// Fields a newer writer added are kept in [`Meta::unknown`] and written back by
/// [`Meta::to_bytes`].
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Format version of this file.
    pub format: u32,
    /// Minimum format version a reader must understand.
    pub min_reader: u32,
    /// Minimum format version a writer must understand to commit.
    pub min_writer: u32,
    /// The snapshot, if any.
    pub snapshot: Option<SnapshotRef>,
    /// The commit sequence number ("globalUpdateCount" in the seed design).
    pub head: u64,
    /// Deltas committed since the snapshot, in seq order: all of them once completed; as read
    /// from a format-2 meta.json, only the newest.
    pub deltas: Vec<DeltaRef>,
    /// Versions of the entities changed since the snapshot (format 1 only: format 2 neither
    /// writes nor reads them).
    pub entity_versions: VersionMap,
    /// Time of the last commit, ms since the Unix epoch.
    pub last_sync_timestamp: u64,
    /// Devices that committed, by device id.
    pub devices: BTreeMap<String, DeviceInfo>,
    /// What the remote's probe found (`doctor`), as recorded at `init`.
    pub server: Option<serde_json::Value>,
    /// The modification time (Unix seconds) this meta.json was written with, on servers that
    /// take one from the client (Nextcloud's `X-OC-MTime`). Each writer uses a value strictly
    /// greater than the one it replaces ([`Meta::next_mtime`]): Nextcloud keeps a file's ETag
    /// while its mtime in seconds is unchanged, so equal mtimes would mean equal ETags for
    /// different commits.
    pub mtime: Option<u64>,
    /// The fields of meta.json this version does not know (a newer writer's optional fields),
    /// written back when this meta is.
    pub unknown: UnknownFields,
}

/// The fields of a meta.json that this version does not know, kept so that rewriting the file
/// writes them back unchanged (`docs/format.md`: a writer may add optional fields without
/// raising `minReader`). Each object's unknown fields are written after its known ones,
/// sorted by name. Those of an entry (the snapshot, a delta, a device) belong to that entry:
/// they are written back while meta has an entry of that name, and dropped with it.
///
/// No key of these maps is a field this version knows: a name that is would be written twice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnknownFields {
    /// Unknown fields of meta.json itself.
    pub meta: Extra,
    /// Unknown fields of the `snapshot` entry, with the snapshot `name` they were read with:
    /// they describe that file, and are written back only while `snapshot` names it.
    pub snapshot: Option<(String, Extra)>,
    /// Unknown fields of entries of `deltas`, by the entry's `path`.
    pub deltas: BTreeMap<String, Extra>,
    /// Unknown fields of entries of `devices`, by device id.
    pub devices: BTreeMap<String, Extra>,
}

impl UnknownFields {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
            && self.snapshot.is_none()
            && self.deltas.is_empty()
            && self.devices.is_empty()
    }
}

/// meta.json as it is read: the entries with their unknown fields.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaIn {
    format: u32,
    min_reader: u32,
    min_writer: u32,
    #[serde(default)]
    snapshot: Option<Kept<SnapshotRef>>,
    #[serde(rename = "globalUpdateCount")]
    head: u64,
    #[serde(default)]
    deltas: Vec<Kept<DeltaRef>>,
    #[serde(default)]
    entity_versions: VersionMap,
    #[serde(default)]
    last_sync_timestamp: u64,
    #[serde(default)]
    devices: BTreeMap<String, Kept<DeviceInfo>>,
    #[serde(default)]
    server: Option<serde_json::Value>,
    #[serde(default)]
    mtime: Option<u64>,
}

/// meta.json as it is written: every entry followed by its unknown fields, then meta's own.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetaOut<'a> {
    format: u32,
    min_reader: u32,
    min_writer: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<KeptRef<'a, SnapshotRef>>,
    #[serde(rename = "globalUpdateCount")]
    head: u64,
    deltas: Vec<KeptRef<'a, Entry<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_versions: Option<&'a VersionMap>,
    last_sync_timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    devices: Option<BTreeMap<&'a str, KeptRef<'a, DeviceInfo>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtime: Option<u64>,
    #[serde(flatten)]
    unknown: &'a Extra,
}

/// A meta.json with every delta since the snapshot listed, whatever its format: the local copy
/// a device keeps ([`Meta::to_local_bytes`]).
struct Listed<'a>(&'a Meta);

impl Serialize for Listed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_listing(serializer, usize::MAX, false)
    }
}

impl Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Format 2 lists only the newest delta, as a link: the others are found through
        // `prev`.
        if self.chained() {
            self.serialize_listing(serializer, LISTED_IN_CHAINED, true)
        } else {
            self.serialize_listing(serializer, usize::MAX, false)
        }
    }
}

/// How many of the newest deltas a format-2 meta.json lists.
const LISTED_IN_CHAINED: usize = 1;

/// A format-2 meta.json's size in bytes is its head modulo this, plus a multiple of it
/// ([`Meta::to_bytes`]): up to this many commits in one second get meta.json files of different
/// sizes.
const SIZE_FOLLOWS_HEAD: usize = 32;

impl Meta {
    /// Serialises meta.json listing the newest `listed` deltas, in full or as `links` (and,
    /// in format 1, the version map).
    fn serialize_listing<S: serde::Serializer>(
        &self,
        serializer: S,
        listed: usize,
        links: bool,
    ) -> Result<S::Ok, S::Error> {
        let chained = self.chained();
        let Meta {
            format,
            min_reader,
            min_writer,
            snapshot,
            head,
            deltas,
            entity_versions,
            last_sync_timestamp,
            devices,
            server,
            mtime,
            unknown,
        } = self;
        let snapshot = snapshot.as_ref().map(|s| KeptRef {
            value: s,
            extra: match &unknown.snapshot {
                Some((name, extra)) if *name == s.name => extra,
                _ => &unknown::NONE,
            },
        });
        let listed = &deltas[deltas.len().saturating_sub(listed)..];
        let entries: Vec<Entry> = listed
            .iter()
            .map(|d| {
                if links {
                    Entry::Link(d.into())
                } else {
                    Entry::Full(d)
                }
            })
            .collect();
        let deltas = entries
            .iter()
            .zip(listed)
            .map(|(e, d)| KeptRef {
                value: e,
                extra: unknown.deltas.get(&d.path).unwrap_or(&unknown::NONE),
            })
            .collect();
        // Format 2 names the devices in the deltas and the snapshot, not in meta.json (whose
        // size would grow with each device); the local copy keeps them all.
        let devices = (!links).then(|| {
            devices
                .iter()
                .map(|(id, d)| {
                    let extra = unknown.devices.get(id).unwrap_or(&unknown::NONE);
                    (id.as_str(), KeptRef { value: d, extra })
                })
                .collect()
        });
        MetaOut {
            format: *format,
            min_reader: *min_reader,
            min_writer: *min_writer,
            snapshot,
            head: *head,
            deltas,
            entity_versions: (!chained).then_some(entity_versions),
            last_sync_timestamp: *last_sync_timestamp,
            devices,
            server: server.as_ref(),
            mtime: *mtime,
            unknown: &unknown.meta,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Kept {
            value: m,
            extra: meta,
        } = Kept::<MetaIn>::deserialize(deserializer)?;
        let mut unknown = UnknownFields {
            meta,
            ..UnknownFields::default()
        };
        let snapshot = m.snapshot.map(|Kept { value, extra }| {
            if !extra.is_empty() {
                unknown.snapshot = Some((value.name.clone(), extra));
            }
            value
        });
        let deltas = m
            .deltas
            .into_iter()
            .map(|Kept { value, extra }| {
                if !extra.is_empty() {
                    unknown.deltas.insert(value.path.clone(), extra);
                }
                value
            })
            .collect();
        let devices = m
            .devices
            .into_iter()
            .map(|(id, Kept { value, extra })| {
                if !extra.is_empty() {
                    unknown.devices.insert(id.clone(), extra);
                }
                (id, value)
            })
            .collect();
        Ok(Meta {
            format: m.format,
            min_reader: m.min_reader,
            min_writer: m.min_writer,
            snapshot,
            head: m.head,
            deltas,
            entity_versions: m.entity_versions,
            last_sync_timestamp: m.last_sync_timestamp,
            devices,
            server: m.server,
            mtime: m.mtime,
            unknown,
        })
    }
}

impl Meta {
    /// An empty meta of this library's format with the given head and no snapshot.
    pub fn new(head: u64) -> Self {
        Meta {
            format: FORMAT_VERSION,
            min_reader: FORMAT_VERSION,
            min_writer: FORMAT_VERSION,
            snapshot: None,
            head,
            deltas: Vec::new(),
            entity_versions: BTreeMap::new(),
            last_sync_timestamp: 0,
            devices: BTreeMap::new(),
            server: None,
            mtime: None,
            unknown: UnknownFields::default(),
        }
    }

    /// The mtime (Unix seconds) for the meta.json that replaces this one: `now_s`, or one more
    /// than this meta's own [`Meta::mtime`] if that is not below it.
    pub fn next_mtime(&self, now_s: u64) -> u64 {
        match self.mtime {
            Some(m) if m >= now_s => m + 1,
            _ => now_s,
        }
    }

    /// Parses meta.json, refusing a format this reader cannot read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let probe: VersionProbe =
            serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
                what: "meta.json",
                source,
            })?;
        check_reader("meta.json", probe.min_reader)?;
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "meta.json",
            source,
        })
    }

    /// Serialises meta.json as it is written to the remote (compact and deterministic: it is
    /// rewritten by every commit, so its bytes count). In format 2 it lists only the newest
    /// delta and no version map, so its size does not grow with the commits.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("format types always serialise");
        if self.chained() {
            // Many servers make a file's ETag of its mtime in seconds and its size (wsgidav,
            // lighttpd): two commits in one second whose meta.json had the same size would
            // share an ETag, and a stale If-Match would succeed. Format 1's meta.json grew with
            // every commit; format 2's keeps its size, so spaces after it make its size follow
            // the head: consecutive commits always differ in size.
            let pad = (self.head as usize).wrapping_sub(bytes.len()) % SIZE_FOLLOWS_HEAD;
            bytes.resize(bytes.len() + pad, b' ');
        }
        bytes
    }

    /// Serialises meta.json with every delta since the snapshot listed, whatever the format:
    /// the copy a device keeps locally, which [`Meta::from_bytes`] reads back complete.
    pub fn to_local_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Listed(self)).expect("format types always serialise")
    }

    /// Whether this meta.json is of a format that lists only the newest delta
    /// ([`CHAINED_FORMAT`](crate::CHAINED_FORMAT)): the older ones are found by following
    /// [`Delta::prev`](crate::Delta::prev).
    pub fn chained(&self) -> bool {
        self.format >= crate::CHAINED_FORMAT
    }

    /// The seq of the first commit after the snapshot (1 without a snapshot).
    pub fn first_seq(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.head) + 1
    }

    /// Whether [`Meta::deltas`] lists every commit since the snapshot: from
    /// [`Meta::first_seq`] up to the head. A format-2 meta.json as read lists only the newest;
    /// the store completes it.
    pub fn is_complete(&self) -> bool {
        match self.deltas.first() {
            Some(d) => d.seq == self.first_seq(),
            None => self.head < self.first_seq(),
        }
    }

    /// Raises a meta.json of an older format to this library's (at a compaction, which lists
    /// no delta): from then on it lists only the newest delta, and readers older than format 2
    /// refuse it and say to upgrade. Never lowers what a newer writer set.
    pub fn upgrade(&mut self) {
        self.format = self.format.max(FORMAT_VERSION);
        self.min_reader = self.min_reader.max(crate::CHAINED_FORMAT);
        self.min_writer = self.min_writer.max(crate::CHAINED_FORMAT);
        self.entity_versions.clear();
    }

    /// Whether this client may commit to a remote with this meta.
    pub fn writable(&self) -> bool {
        self.min_writer <= FORMAT_VERSION
    }

    /// The delta with this seq, if meta lists it.
    pub fn delta(&self, seq: u64) -> Option<&DeltaRef> {
        self.deltas.iter().find(|d| d.seq == seq)
    }

    /// Whether meta lists a delta at this path.
    pub fn references(&self, path: &str) -> bool {
        self.deltas.iter().any(|d| d.path == path)
    }

    /// Records that `device` committed at `time`, under `name` when it is known (a delta of
    /// an earlier writer names no device). The newest commit's name wins.
    pub fn note_device(&mut self, device: &str, name: Option<&str>, time: u64) {
        let info = self.devices.entry(device.to_string()).or_default();
        if let Some(name) = name
            && (time >= info.last_commit || info.name.is_empty())
        {
            info.name = name.to_string();
        }
        info.last_commit = info.last_commit.max(time);
    }

    /// Takes in what another source (the local copy, a snapshot, an older writer's meta.json)
    /// knows of the devices: for each, the name of its latest commit and that commit's time.
    pub fn merge_devices(&mut self, others: &BTreeMap<String, DeviceInfo>) {
        for (id, d) in others {
            let name = (!d.name.is_empty()).then_some(d.name.as_str());
            self.note_device(id, name, d.last_commit);
        }
    }
}
