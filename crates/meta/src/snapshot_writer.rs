//! Writing a snapshot one record at a time: the same bytes as [`Snapshot::to_bytes`] without
//! holding every record (a compaction folds every entity of the workspace).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::unknown::{self, KeptRef};
use crate::{ConflictReceipt, DeviceInfo, EntityRecord, FORMAT_VERSION, Snapshot, WithExtra};

/// Builds a snapshot file record by record, in the order they are pushed (which must be
/// (collection, id), as [`Snapshot::records`]): [`SnapshotWriter::finish`] gives exactly the
/// bytes [`Snapshot::to_bytes`] gives for the same snapshot, but only one record is held as a
/// value at a time.
///
/// ```
/// use deltasync_meta::{EntityRecord, Hlc, Snapshot, SnapshotWriter};
///
/// let record = EntityRecord {
///     collection: "tasks".into(),
///     id: "t1".into(),
///     version: 3,
///     last_modified_at: Hlc { ms: 1, counter: 0 },
///     last_modified_by: "laptop".into(),
///     is_deleted: false,
///     data: serde_json::json!({"title": "milk"}),
///     extra: Default::default(),
/// };
/// let mut w = SnapshotWriter::new(1, 3, 7);
/// w.push(&record);
/// assert_eq!(w.records(), 1);
/// let bytes = w.finish(&[], &[], &Default::default());
/// let mut whole = Snapshot::empty(7);
/// (whole.generation, whole.head, whole.records) = (1, 3, vec![record]);
/// assert_eq!(bytes, whole.to_bytes());
/// ```
pub struct SnapshotWriter {
    out: Vec<u8>,
    records: u64,
}

/// The fields of [`Snapshot`] written before `records`, in its order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    format: u32,
    min_reader: u32,
    generation: u64,
    head: u64,
    time: u64,
}

/// The fields written after `records`, in [`Snapshot`]'s order and with its rules.
#[derive(Serialize)]
struct Tail<'a> {
    #[serde(with = "unknown::kept_vec")]
    conflicts: &'a [ConflictReceipt],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    folded: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    devices: &'a BTreeMap<String, DeviceInfo>,
}

impl SnapshotWriter {
    /// Starts a snapshot of `generation` folding commits up to `head`, written at `time`
    /// (ms), of this library's format.
    pub fn new(generation: u64, head: u64, time: u64) -> Self {
        let empty = Snapshot::empty(time);
        let head = Head {
            format: FORMAT_VERSION,
            min_reader: empty.min_reader,
            generation,
            head,
            time,
        };
        let mut out = serde_json::to_vec(&head).expect("format types always serialise");
        // `{…}` becomes `{…,"records":[`.
        out.pop();
        out.extend_from_slice(br#","records":["#);
        SnapshotWriter { out, records: 0 }
    }

    /// Appends one record (with its unknown fields, as [`Snapshot::to_bytes`] writes them).
    pub fn push(&mut self, record: &EntityRecord) {
        if self.records > 0 {
            self.out.push(b',');
        }
        let kept = KeptRef {
            value: record,
            extra: record.extra(),
        };
        serde_json::to_writer(&mut self.out, &kept).expect("format types always serialise");
        self.records += 1;
    }

    /// How many records were pushed.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Ends the snapshot with its open conflict receipts, the deltas it folds and the devices
    /// that committed up to its head, and returns its bytes.
    pub fn finish(
        mut self,
        conflicts: &[ConflictReceipt],
        folded: &[String],
        devices: &BTreeMap<String, DeviceInfo>,
    ) -> Vec<u8> {
        let tail = serde_json::to_vec(&Tail {
            conflicts,
            folded,
            devices,
        })
        .expect("format types always serialise");
        // `{"conflicts":…}` continues the object after `]`.
        self.out.extend_from_slice(b"],");
        self.out.extend_from_slice(&tail[1..]);
        self.out
    }
}
