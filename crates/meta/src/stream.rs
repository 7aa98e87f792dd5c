//! Reading a snapshot record by record: a new device's bootstrap hands each entity record to
//! its caller as it is parsed, instead of building every record of the snapshot at once.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::{EntityRecord, FormatError, Kept, Snapshot, VersionProbe, WithExtra, check_reader};

/// Why [`Snapshot::stream`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E: std::error::Error + 'static> {
    /// The file is not a snapshot this version can read.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The caller's function refused a record (its error).
    #[error(transparent)]
    Stopped(E),
}

/// Deserialisation stopped by the caller: a marker message; the caller's error is kept apart.
const STOPPED: &str = "stopped by the reader of the records";

impl Snapshot {
    /// Parses a snapshot, handing each entity record to `on_record` as it is read (in the
    /// file's order, unknown fields kept in [`EntityRecord::extra`] as [`Snapshot::from_bytes`]
    /// keeps them), and returns the snapshot with every other field read as
    /// [`Snapshot::from_bytes`] reads it and `records` empty. What it holds at once is one
    /// record, besides the bytes and the other fields. A file nested deeper than serde_json's
    /// limit is read as [`crate::parse_deep`] reads it.
    ///
    /// The records are handed on before the rest of the file is checked: a caller that must
    /// not keep what a damaged file gave it keeps the records somewhere it can undo (a
    /// transaction).
    pub fn stream<E: std::error::Error + 'static>(
        bytes: &[u8],
        mut on_record: impl FnMut(EntityRecord) -> Result<(), E>,
    ) -> Result<Snapshot, StreamError<E>> {
        Self::stream_inner(bytes, Some(&mut on_record))
    }

    /// The snapshot without its records (`records` empty), every other field read as
    /// [`Snapshot::from_bytes`] reads it; the records are checked to be JSON, not read.
    pub fn without_records(bytes: &[u8]) -> Result<Snapshot, FormatError> {
        type Nothing = fn(EntityRecord) -> Result<(), std::io::Error>;
        match Self::stream_inner::<std::io::Error, Nothing>(bytes, None) {
            Ok(snap) => Ok(snap),
            Err(StreamError::Format(e)) => Err(e),
            Err(StreamError::Stopped(e)) => unreachable!("no function to stop: {e}"),
        }
    }

    fn stream_inner<E: std::error::Error + 'static, F: FnMut(EntityRecord) -> Result<(), E>>(
        bytes: &[u8],
        on_record: Option<&mut F>,
    ) -> Result<Snapshot, StreamError<E>> {
        let json = |source| FormatError::Json {
            what: "data.json",
            source,
        };
        let probe: VersionProbe = crate::parse_deep(bytes).map_err(json)?;
        check_reader("data.json", probe.min_reader)?;
        let mut stopped: Option<E> = None;
        let top = Top {
            on_record,
            stopped: &mut stopped,
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        // Past serde_json's limit, as parse_deep: without the limit, on a stack grown on the
        // heap; deeper than MAX_NESTING, the limit's error.
        let depth = crate::nesting_depth(bytes);
        let rest = if depth > 100 && depth <= crate::MAX_NESTING {
            de.disable_recursion_limit();
            top.deserialize(serde_stacker::Deserializer::new(&mut de))
        } else {
            top.deserialize(&mut de)
        }
        .and_then(|rest| de.end().map(|()| rest));
        let rest = match (rest, stopped) {
            (_, Some(e)) => return Err(StreamError::Stopped(e)),
            (Err(e), None) => return Err(json(e).into()),
            (Ok(rest), None) => rest,
        };
        Ok(serde_json::from_value(serde_json::Value::Object(rest)).map_err(json)?)
    }
}

/// The snapshot's top-level object: `records` handed on one by one, every other field kept
/// as a JSON value (read into a [`Snapshot`] afterwards, so that the fields and their rules
/// stay those of the type).
struct Top<'a, F, E> {
    /// `None`: the records are skipped.
    on_record: Option<&'a mut F>,
    stopped: &'a mut Option<E>,
}

impl<'de, F, E> DeserializeSeed<'de> for Top<'_, F, E>
where
    F: FnMut(EntityRecord) -> Result<(), E>,
{
    type Value = serde_json::Map<String, serde_json::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F, E> Visitor<'de> for Top<'_, F, E>
where
    F: FnMut(EntityRecord) -> Result<(), E>,
{
    type Value = serde_json::Map<String, serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a snapshot object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rest = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if rest.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            if key == "records" {
                match &mut self.on_record {
                    Some(on_record) => map.next_value_seed(Records {
                        on_record: &mut **on_record,
                        stopped: &mut *self.stopped,
                    })?,
                    None => {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                rest.insert(key, serde_json::Value::Array(Vec::new()));
            } else {
                let value: serde_json::Value = map.next_value()?;
                rest.insert(key, value);
            }
        }
        Ok(rest)
    }
}

/// The `records` array, each element handed on as it is read.
struct Records<'a, F, E> {
    on_record: &'a mut F,
    stopped: &'a mut Option<E>,
}

impl<'de, F, E> DeserializeSeed<'de> for Records<'_, F, E>
where
    F: FnMut(EntityRecord) -> Result<(), E>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F, E> Visitor<'de> for Records<'_, F, E>
where
    F: FnMut(EntityRecord) -> Result<(), E>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of entity records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(Kept { mut value, extra }) = seq.next_element::<Kept<EntityRecord>>()? {
            value.set_extra(extra);
            if let Err(e) = (self.on_record)(value) {
                *self.stopped = Some(e);
                return Err(de::Error::custom(STOPPED));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Vec<u8> {
        let text = json!({
            "format": 2, "minReader": 1, "generation": 3, "head": 17, "time": 1234,
            "records": [
                {"collection": "tasks", "id": "a", "version": 4, "lastModifiedAt": [5, 0],
                 "lastModifiedBy": "d1", "data": {"n": 1.50, "big": 123456789012345678901234567890u128}, "newField": [1]},
                {"collection": "tasks", "id": "b", "version": 6, "lastModifiedAt": [7, 1],
                 "lastModifiedBy": "d2", "isDeleted": true, "data": null}
            ],
            "conflicts": [
                {"id": "d1-1-0001", "collection": "tasks", "entityId": "a", "field": ["n"],
                 "kind": "field", "kept": 1, "keptBy": "d1", "lost": 2, "lostBy": "d2",
                 "at": [9, 0], "resolved": false, "extraReceipt": true}
            ],
            "folded": ["deltas/g2/x.json"],
            "devices": {"d1": {"name": "laptop", "lastCommit": 99}},
            "someTopLevelField": {"x": 1}
        });
        serde_json::to_vec(&text).unwrap()
    }

    #[test]
    fn streaming_gives_what_parsing_gives() {
        let bytes = sample();
        let whole = Snapshot::from_bytes(&bytes).unwrap();
        let mut records = Vec::new();
        let rest = Snapshot::stream(&bytes, |r| {
            records.push(r);
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
        assert_eq!(records, whole.records);
        assert_eq!(records[0].extra.get("newField"), Some(&json!([1])));
        assert_eq!(Snapshot::without_records(&bytes).unwrap(), rest);
        assert_eq!(rest.devices["d1"].name, "laptop");
        assert_eq!(rest.folded, ["deltas/g2/x.json"]);
        assert_eq!(rest.conflicts.len(), 1);
        assert_eq!(
            rest.conflicts[0].extra.get("extraReceipt"),
            Some(&json!(true))
        );
        assert_eq!(
            Snapshot {
                records: whole.records.clone(),
                ..rest
            },
            whole
        );
    }

    #[test]
    fn a_refusal_stops_the_stream_with_its_error() {
        let bytes = sample();
        let mut seen = 0;
        let err = Snapshot::stream(&bytes, |_| {
            seen += 1;
            Err(std::io::Error::other("full"))
        })
        .unwrap_err();
        assert_eq!(seen, 1);
        assert!(matches!(err, StreamError::Stopped(e) if e.to_string() == "full"));
    }

    #[test]
    fn damaged_and_too_new_files_are_format_errors() {
        let ok = |_| Ok::<(), std::io::Error>(());
        assert!(matches!(
            Snapshot::stream(br#"{"format":2,"records":[1]}"#, ok),
            Err(StreamError::Format(FormatError::Json { .. }))
        ));
        assert!(matches!(
            Snapshot::stream(br#"{"format":9,"minReader":9,"records":[]}"#, ok),
            Err(StreamError::Format(FormatError::TooNew { needed: 9, .. }))
        ));
        // A missing field is refused as from_bytes refuses it.
        assert!(Snapshot::from_bytes(br#"{"format":2,"minReader":1,"records":[]}"#).is_err());
        assert!(Snapshot::stream(br#"{"format":2,"minReader":1,"records":[]}"#, ok).is_err());
    }

    #[test]
    fn a_deep_record_is_read_as_parse_deep_reads_it() {
        let mut data = String::from("1");
        for _ in 0..300 {
            data = format!("{{\"a\":{data}}}");
        }
        let text = format!(
            r#"{{"format":2,"minReader":1,"generation":0,"head":1,"time":0,"records":[{{"collection":"c","id":"x","version":1,"lastModifiedAt":[1,0],"lastModifiedBy":"d","data":{data}}}],"conflicts":[]}}"#
        );
        let whole = Snapshot::from_bytes(text.as_bytes()).unwrap();
        let mut records = Vec::new();
        Snapshot::stream(text.as_bytes(), |r| {
            records.push(r);
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
        assert_eq!(records, whole.records);
    }
}
