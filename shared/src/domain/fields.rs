//! A record's top-level fields as validation reads them: parsed from JSON text borrowing its
//! strings and keys (no allocation per field for the common record), or taken from CSV fields.
//! Values mean what `serde_json::Value` means — numbers are the same `Number`, a later duplicate
//! key wins — so validation gives the same result and messages whichever way a record came.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// One field's value: strings and numbers as read; anything else (null, booleans, arrays,
/// objects) as a `Value`.
#[derive(Debug, PartialEq)]
pub enum Field<'a> {
    Str(Cow<'a, str>),
    Number(Number),
    Other(Value),
}

impl Field<'_> {
    /// The JSON type, as rejection messages name it.
    pub fn json_type(&self) -> &'static str {
        match self {
            Field::Str(_) => "a string",
            Field::Number(_) => "a number",
            Field::Other(Value::Null) => "null",
            Field::Other(Value::Bool(_)) => "a boolean",
            Field::Other(Value::Number(_)) => "a number",
            Field::Other(Value::String(_)) => "a string",
            Field::Other(Value::Array(_)) => "an array",
            Field::Other(Value::Object(_)) => "an object",
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Field::Other(Value::Null))
    }
}

/// A record's top-level fields in the order they came.
#[derive(Debug, Default, PartialEq)]
pub struct Fields<'a>(Vec<(Cow<'a, str>, Field<'a>)>);

impl<'a> Fields<'a> {
    /// The fields of a CSV row (typed already), borrowed.
    pub fn of_map(map: &'a Map<String, Value>) -> Self {
        Fields(
            map.iter()
                .map(|(key, value)| {
                    let field = match value {
                        Value::String(s) => Field::Str(Cow::Borrowed(s)),
                        Value::Number(n) => Field::Number(n.clone()),
                        other => Field::Other(other.clone()),
                    };
                    (Cow::Borrowed(key.as_str()), field)
                })
                .collect(),
        )
    }

    /// The field's value; absent and null are the same. Of duplicate keys the last counts.
    pub fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, field)| field)
            .filter(|field| !field.is_null())
    }
}

/// A JSON document that should be one object: its fields, or the JSON type it was instead.
pub enum JsonRecord<'a> {
    Object(Fields<'a>),
    NotObject(&'static str),
}

impl<'a> JsonRecord<'a> {
    /// Parses `text`.
    ///
    /// # Errors
    /// serde_json's error when `text` is not one JSON document.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl<'de> Deserialize<'de> for JsonRecord<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = JsonRecord<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(12));
        while let Some(Key(key)) = map.next_key()? {
            fields.push((key, map.next_value()?));
        }
        Ok(JsonRecord::Object(Fields(fields)))
    }

    /// Read as a `Value` would be, so that nesting too deep is an error here too.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(JsonRecord::NotObject("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(JsonRecord::NotObject("a string"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(JsonRecord::NotObject("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(JsonRecord::NotObject("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(JsonRecord::NotObject("a number"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(JsonRecord::NotObject("a boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(JsonRecord::NotObject("null"))
    }
}

/// An object key, borrowed from the text unless it has escapes.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Field::Number(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Field::Number(n.into()))
    }

    /// As `Value` does: a float JSON cannot hold becomes null.
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(n).map_or(Field::Other(Value::Null), Field::Number))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Field::Other(Value::Bool(b)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Other(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Field::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields as serde_json's `Value` reads the same text.
    fn as_values(fields: &Fields) -> Map<String, Value> {
        fields
            .0
            .iter()
            .map(|(key, field)| {
                let value = match field {
                    Field::Str(s) => Value::String(s.to_string()),
                    Field::Number(n) => Value::Number(n.clone()),
                    Field::Other(v) => v.clone(),
                };
                (key.to_string(), value)
            })
            .collect()
    }

    #[test]
    fn fields_read_what_value_reads() {
        let texts = [
            r#"{"a":"x","b":1,"c":-2,"d":1.5,"f":null,"g":true,"h":[1,{"z":2}],"i":{"y":[],"x":"é"},"j":18446744073709551615}"#,
            r#"{"esc\"aped":"line\nbreak \u00e9","b":12345678901234567890123}"#,
            r#" { "a" : 1 , "a" : "later" } "#,
            "{}",
        ];
        for text in texts {
            let Ok(JsonRecord::Object(fields)) = JsonRecord::parse(text) else {
                panic!("{text} is an object");
            };
            let Ok(Value::Object(expected)) = serde_json::from_str::<Value>(text) else {
                panic!("{text} is an object for Value too");
            };
            let mut ours = as_values(&fields);
            // A duplicate key: Value keeps the last; `get` does too.
            if text.contains("\"later\"") {
                assert_eq!(fields.get("a"), Some(&Field::Str("later".into())));
                ours.insert("a".into(), Value::String("later".into()));
            }
            assert_eq!(ours, expected, "{text}");
        }
    }

    #[test]
    fn unescaped_strings_and_keys_are_borrowed_and_null_is_absent() {
        let Ok(JsonRecord::Object(fields)) =
            JsonRecord::parse(r#"{"id":"abc","n":null,"e":"a\tb"}"#)
        else {
            panic!("an object");
        };
        assert!(matches!(
            fields.get("id"),
            Some(Field::Str(Cow::Borrowed("abc")))
        ));
        assert!(matches!(fields.get("e"), Some(Field::Str(Cow::Owned(s))) if s == "a\tb"));
        assert!(
            fields
                .0
                .iter()
                .all(|(key, _)| matches!(key, Cow::Borrowed(_)))
        );
        assert_eq!(fields.get("n"), None);
        assert_eq!(fields.get("missing"), None);
    }

    #[test]
    fn other_documents_name_their_type_and_bad_text_is_an_error() {
        for (text, kind) in [
            ("[1,[2]]", "an array"),
            ("\"s\"", "a string"),
            ("3", "a number"),
            ("-3.5", "a number"),
            ("false", "a boolean"),
            ("null", "null"),
        ] {
            assert!(
                matches!(JsonRecord::parse(text), Ok(JsonRecord::NotObject(k)) if k == kind),
                "{text}"
            );
        }
        for text in ["", "{", r#"{"a":1} x"#, r#"{"a":}"#, "{1:2}"] {
            let ours = JsonRecord::parse(text).err().map(|e| e.to_string());
            let value = serde_json::from_str::<Value>(text)
                .err()
                .map(|e| e.to_string());
            assert!(ours.is_some(), "{text} is not JSON");
            assert_eq!(ours, value, "{text}: the same message as Value's");
        }
    }
}
