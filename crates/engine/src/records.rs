//! Single records: get, list, update, delete — on the local copy and the remote together.
//!
//! Reads fetch first, so the remote side is current. Writes change the local file (never over
//! a save the app made meanwhile) and then run a normal sync: the change is committed by
//! compare-and-swap and a concurrent change on another device is merged per the
//! collection's strategy, never overwritten blindly.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::collections::{self, CollectionError, Write};
use crate::{Engine, EngineError, SyncOptions, SyncReport};

/// The remote side of an entity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteRecord {
    /// Version (the seq of the commit that last wrote it).
    pub version: u64,
    /// When it was last changed, ms since the Unix epoch.
    pub modified_ms: u64,
    /// Device id of that change.
    pub modified_by: String,
    /// Whether it is a tombstone.
    pub deleted: bool,
    /// The content on the remote (`null` for a tombstone).
    pub data: Value,
}

/// One entity as `get` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityView {
    /// Collection.
    pub collection: String,
    /// Id.
    pub id: String,
    /// The local content, if the entity exists locally.
    pub local: Option<Value>,
    /// The remote record, if the remote has one.
    pub remote: Option<RemoteRecord>,
    /// Whether local and remote content are the same.
    pub in_sync: bool,
}

/// One row of `list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListEntry {
    /// Id.
    pub id: String,
    /// Remote version, if on the remote (live).
    pub version: Option<u64>,
    /// Whether the entity exists locally.
    pub local: bool,
    /// Whether it exists (live) on the remote.
    pub remote: bool,
}

/// Parses `field=value`: the value is JSON if it parses, otherwise a string; the field is a
/// dotted path (`a.b.c`).
pub fn parse_assignment(s: &str) -> Option<(Vec<String>, Value)> {
    let (field, value) = s.split_once('=')?;
    if field.is_empty() || field.split('.').any(str::is_empty) {
        return None;
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Some((field.split('.').map(str::to_string).collect(), value))
}

/// Sets the field at `path`, making missing objects on the way; `Err(prefix)` when a field on
/// the way holds something else than an object (setting `title.x` must not replace the
/// string `title` silently).
fn set_field(root: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let mut cur = root;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            if i > 0 && !cur.is_null() {
                return Err(path[..i].join("."));
            }
            *cur = Value::Object(Default::default());
        }
        let obj = cur.as_object_mut().expect("made an object above");
        if i + 1 == path.len() {
            obj.insert(key.clone(), value);
            return Ok(());
        }
        cur = obj
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

impl Engine {
    fn remote_record(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<RemoteRecord>, EngineError> {
        Ok(self.state().mirror(collection, id)?.map(|m| RemoteRecord {
            version: m.version,
            modified_ms: m.clock.ms,
            modified_by: m.device,
            deleted: m.content.is_none(),
            data: m.content.unwrap_or(Value::Null),
        }))
    }

    /// One entity, local and remote (after a fetch).
    pub fn get_entity(&mut self, collection: &str, id: &str) -> Result<EntityView, EngineError> {
        self.check_collection(collection)?;
        self.fetch()?;
        let kind = self.config().collections[collection].kind();
        let scan = collections::scan(self.root(), &kind)?;
        let local = scan.entities.get(id).cloned();
        let remote = self.remote_record(collection, id)?;
        let live_remote = remote.as_ref().filter(|r| !r.deleted);
        if local.is_none() && live_remote.is_none() {
            return Err(EngineError::NoSuchEntity {
                collection: collection.into(),
                id: id.into(),
            });
        }
        let in_sync = local.as_ref() == live_remote.map(|r| &r.data);
        Ok(EntityView {
            collection: collection.into(),
            id: id.into(),
            local,
            remote,
            in_sync,
        })
    }

    /// Every entity of a collection, local or remote (after a fetch), sorted by id.
    pub fn list_entities(&mut self, collection: &str) -> Result<Vec<ListEntry>, EngineError> {
        self.check_collection(collection)?;
        self.fetch()?;
        let kind = self.config().collections[collection].kind();
        let scan = collections::scan(self.root(), &kind)?;
        let mut out: BTreeMap<String, ListEntry> = BTreeMap::new();
        for (c, id, m) in self.state().all_mirror()? {
            if c == collection && m.content.is_some() {
                out.insert(
                    id.clone(),
                    ListEntry {
                        id,
                        version: Some(m.version),
                        local: false,
                        remote: true,
                    },
                );
            }
        }
        for id in scan.entities.keys().chain(scan.held.iter()) {
            out.entry(id.clone())
                .or_insert_with(|| ListEntry {
                    id: id.clone(),
                    version: None,
                    local: false,
                    remote: false,
                })
                .local = true;
        }
        Ok(out.into_values().collect())
    }

    /// Sets fields of an entity (dotted paths) and syncs: committed by compare-and-swap, a
    /// concurrent change merged per the collection's strategy.
    pub fn update_entity(
        &mut self,
        collection: &str,
        id: &str,
        assignments: &[(Vec<String>, Value)],
    ) -> Result<SyncReport, EngineError> {
        self.change_entity(collection, id, |current| {
            let mut v = current;
            for (path, value) in assignments {
                set_field(&mut v, path, value.clone()).map_err(|field| {
                    EngineError::NotAnObject {
                        collection: collection.into(),
                        id: id.into(),
                        field,
                        path: path.join("."),
                    }
                })?;
            }
            Ok(Some(v))
        })
    }

    /// Deletes an entity and syncs.
    pub fn delete_entity(&mut self, collection: &str, id: &str) -> Result<SyncReport, EngineError> {
        self.change_entity(collection, id, |_| Ok(None))
    }

    fn change_entity(
        &mut self,
        collection: &str,
        id: &str,
        change: impl Fn(Value) -> Result<Option<Value>, EngineError>,
    ) -> Result<SyncReport, EngineError> {
        self.check_collection(collection)?;
        let kind = self.config().collections[collection].kind();
        let mut scan = collections::scan(self.root(), &kind)?;
        if !scan.entities.contains_key(id) {
            // Perhaps it is on the remote and not pulled yet: pull, then look again.
            self.sync(&SyncOptions::default())?;
            scan = collections::scan(self.root(), &kind)?;
        }
        let Some(current) = scan.entities.get(id).cloned() else {
            return Err(EngineError::NoSuchEntity {
                collection: collection.into(),
                id: id.into(),
            });
        };
        let write = match change(current)? {
            Some(value) => Write::Put {
                id: id.into(),
                value,
            },
            None => Write::Delete { id: id.into() },
        };
        let r = collections::apply(self.root(), &kind, &[write], &scan.fingerprint)?
            .refusal_as_error(
                &self
                    .root()
                    .join(&self.config().collections[collection].path),
            )?;
        if !r.skipped.is_empty() {
            return Err(CollectionError::ChangedMeanwhile {
                path: self.root().to_path_buf(),
            }
            .into());
        }
        self.sync(&SyncOptions::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assignments() {
        assert_eq!(
            parse_assignment("done=true"),
            Some((vec!["done".into()], json!(true)))
        );
        assert_eq!(
            parse_assignment("a.b=hello world"),
            Some((vec!["a".into(), "b".into()], json!("hello world")))
        );
        assert_eq!(
            parse_assignment("n={\"x\":1}"),
            Some((vec!["n".into()], json!({"x": 1})))
        );
        assert_eq!(parse_assignment("novalue"), None);
        assert_eq!(parse_assignment(".a=1"), None);
        let mut v = json!({"a": 1});
        set_field(&mut v, &["b".into(), "c".into()], json!(2)).unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
        // Issue 10: `update t1 title.x=1` on a string replaced it silently.
        let mut v = json!({"title": "milk", "n": null});
        let before = v.clone();
        assert_eq!(
            set_field(&mut v, &["title".into(), "x".into()], json!(1)),
            Err("title".to_string())
        );
        assert_eq!(v, before, "nothing set");
        set_field(&mut v, &["n".into(), "x".into()], json!(1)).unwrap();
        assert_eq!(v["n"], json!({"x": 1}), "a null is made an object");
    }
}
