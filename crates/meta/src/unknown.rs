//! Keeping the fields a newer writer added: docs/format.md lets a writer add optional fields
//! without raising `minReader`, so a writer that rewrites a file must write them back.
//!
//! The derived `Deserialize` of a struct skips a field it does not know by deserialising its
//! value as [`serde::de::IgnoredAny`]. [`Capture`] wraps the deserializer handed to such a
//! derived implementation and turns exactly those skipped values into JSON values, by name:
//! no list of known fields to keep in step, no buffering of the known ones.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, Serialize, Serializer};

/// Fields of one JSON object that this version does not know, by name. Written back after the
/// object's known fields, sorted by name, so that what is written is deterministic.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// A value read together with the fields of its object that its type does not know.
pub(crate) struct Kept<T> {
    /// The value.
    pub value: T,
    /// Its object's unknown fields.
    pub extra: Extra,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Kept<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut extra = Extra::new();
        let value = T::deserialize(Capture::new(deserializer, &mut extra))?;
        Ok(Kept { value, extra })
    }
}

/// A value written with unknown fields after its own: `T` must serialise as a JSON object.
pub(crate) struct KeptRef<'a, T> {
    /// The value.
    pub value: &'a T,
    /// The fields to write after its own.
    pub extra: &'a Extra,
}

impl<T: Serialize> Serialize for KeptRef<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a, T> {
            #[serde(flatten)]
            value: &'a T,
            #[serde(flatten)]
            extra: &'a Extra,
        }
        Flat {
            value: self.value,
            extra: self.extra,
        }
        .serialize(serializer)
    }
}

/// No unknown fields.
pub(crate) static NONE: Extra = BTreeMap::new();

/// A deserializer that hands `inner` on and records the values of the struct's fields that the
/// struct's own deserialization skips, in `extra`.
pub(crate) struct Capture<'a, D> {
    inner: D,
    extra: &'a mut Extra,
}

impl<'a, D> Capture<'a, D> {
    /// Wraps `inner`; skipped fields go to `extra`.
    pub(crate) fn new(inner: D, extra: &'a mut Extra) -> Self {
        Capture { inner, extra }
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Capture<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(CaptureVisitor {
            visitor,
            extra: self.extra,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(CaptureVisitor {
            visitor,
            extra: self.extra,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            CaptureVisitor {
                visitor,
                extra: self.extra,
            },
        )
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct enum identifier
        ignored_any
    }
}

/// Hands the map of the struct to the struct's visitor through [`CaptureMap`].
struct CaptureVisitor<'a, V> {
    visitor: V,
    extra: &'a mut Extra,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for CaptureVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(CaptureMap {
            inner: map,
            extra: self.extra,
            key: None,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(seq)
    }
}

/// The struct's map: remembers each key, and records the value of a key the struct skips.
struct CaptureMap<'a, 'de, A> {
    inner: A,
    extra: &'a mut Extra,
    key: Option<Cow<'de, str>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CaptureMap<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(KeySeed {
            seed,
            key: &mut self.key,
        })
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.next_value_seed(ValueSeed {
            seed,
            key: self.key.take(),
            extra: self.extra,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Reads a key as a string, remembers it, and gives it to the struct's field identifier.
struct KeySeed<'a, 'de, K> {
    seed: K,
    key: &'a mut Option<Cow<'de, str>>,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, 'de, K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<K::Value, D::Error> {
        let key = deserializer.deserialize_str(KeyVisitor)?;
        let value = match &key {
            Cow::Borrowed(s) => self
                .seed
                .deserialize(de::value::BorrowedStrDeserializer::<D::Error>::new(s))?,
            Cow::Owned(s) => self
                .seed
                .deserialize(IntoDeserializer::<D::Error>::into_deserializer(s.as_str()))?,
        };
        *self.key = Some(key);
        Ok(value)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Gives the value to the struct through [`Probe`].
struct ValueSeed<'a, 'de, S> {
    seed: S,
    key: Option<Cow<'de, str>>,
    extra: &'a mut Extra,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for ValueSeed<'_, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Probe {
            inner: deserializer,
            key: self.key,
            extra: self.extra,
        })
    }
}

/// A field's value: handed on unchanged, unless the struct skips it (asks for
/// `ignored_any`); then it is read as a JSON value and recorded under its key.
struct Probe<'a, 'de, D> {
    inner: D,
    key: Option<Cow<'de, str>>,
    extra: &'a mut Extra,
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Probe<'_, 'de, D> {
    type Error = D::Error;

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let value = serde_json::Value::deserialize(self.inner)?;
        if let Some(key) = self.key {
            self.extra.insert(key.into_owned(), value);
        }
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }

    forward! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Small {
        a: u64,
        #[serde(default)]
        b_c: Option<String>,
        inner: Option<Inner>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Inner {
        x: u64,
    }

    #[test]
    fn skipped_fields_are_recorded_and_known_ones_read() {
        let text = r#"{"z":[1,{"q":null}],"a":7,"bC":"s","inner":{"x":1,"y":2},"e\u0073c":true}"#;
        let k: Kept<Small> = serde_json::from_str(text).unwrap();
        assert_eq!(
            k.value,
            Small {
                a: 7,
                b_c: Some("s".into()),
                inner: Some(Inner { x: 1 }),
            }
        );
        // Only the struct's own fields: the inner object's `y` is the inner type's business.
        assert_eq!(
            serde_json::to_string(&k.extra).unwrap(),
            r#"{"esc":true,"z":[1,{"q":null}]}"#
        );
        // The same from a JSON value instead of text.
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let k2: Kept<Small> = serde_json::from_value(v).unwrap();
        assert_eq!((k2.value, k2.extra), (k.value, k.extra));
    }

    #[test]
    fn errors_are_those_of_the_struct() {
        let e = serde_json::from_str::<Kept<Small>>(r#"{"a":"x"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("expected u64"), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = serde_json::from_str::<Kept<Small>>(r#"{"bC":"s"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("missing field `a`"), "{e}");
        let e = serde_json::from_str::<Kept<Small>>(r#"[1]"#).err().unwrap();
        assert!(e.to_string().contains("invalid"), "{e}");
    }

    #[test]
    fn written_after_the_known_fields_sorted() {
        #[derive(Serialize)]
        struct Two {
            b: u8,
            a: u8,
        }
        let extra = Extra::from([
            ("z".to_string(), serde_json::json!(1)),
            ("m".to_string(), serde_json::json!({"k": [true]})),
        ]);
        let text = serde_json::to_string(&KeptRef {
            value: &Two { b: 1, a: 2 },
            extra: &extra,
        })
        .unwrap();
        assert_eq!(text, r#"{"b":1,"a":2,"m":{"k":[true]},"z":1}"#);
        let text = serde_json::to_string(&KeptRef {
            value: &Two { b: 1, a: 2 },
            extra: &NONE,
        })
        .unwrap();
        assert_eq!(text, r#"{"b":1,"a":2}"#);
    }
}

/// A format type that keeps the fields of its JSON object that this version does not know
/// (entity records and conflict receipts: those fields describe that version of the record, or
/// that receipt, so they travel with it into a snapshot and through the local state).
pub trait WithExtra {
    /// The unknown fields read with this value.
    fn extra(&self) -> &Extra;
    /// Sets the unknown fields.
    fn set_extra(&mut self, extra: Extra);
}

/// `#[serde(with = "kept_vec")]`: a list of [`WithExtra`] values, each written with its
/// unknown fields after its own and read with them.
pub(crate) mod kept_vec {
    use super::{Kept, KeptRef, WithExtra};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize + WithExtra>(
        values: &[T],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter().map(|value| KeptRef {
            value,
            extra: value.extra(),
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de> + WithExtra>(
        deserializer: D,
    ) -> Result<Vec<T>, D::Error> {
        let kept: Vec<Kept<T>> = Vec::deserialize(deserializer)?;
        Ok(kept
            .into_iter()
            .map(|Kept { mut value, extra }| {
                value.set_extra(extra);
                value
            })
            .collect())
    }
}

/// One [`WithExtra`] value as JSON text, its unknown fields included (the local state keeps
/// receipts so).
pub fn to_string_kept<T: Serialize + WithExtra>(value: &T) -> String {
    serde_json::to_string(&KeptRef {
        value,
        extra: value.extra(),
    })
    .expect("format types always serialise")
}

/// Reads what [`to_string_kept`] wrote (any depth, as [`crate::parse_deep`]).
pub fn from_slice_kept<T: serde::de::DeserializeOwned + WithExtra>(
    bytes: &[u8],
) -> Result<T, serde_json::Error> {
    let Kept { mut value, extra } = crate::parse_deep::<Kept<T>>(bytes)?;
    value.set_extra(extra);
    Ok(value)
}
