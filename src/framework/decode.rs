//! Typed decoding of configuration and state into Rust structs, and encoding back, with attribute paths in errors.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::diag::{AttrPath, Diagnostic, Step};
use super::value::{Type, Value};

/// Decodes a wholly known value into `T`. An unknown value or a type mismatch becomes an error naming the attribute.
pub fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, Diagnostic> {
    let json = value.to_json().map_err(|path| {
        Diagnostic::error(format!("Value for `{path}` is not known yet"), "this operation needs it to be known; it will be once the resources it depends on exist.")
            .at(dotted_path(&path))
    })?;
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        Diagnostic::error(format!("Invalid value for `{path}`"), e.inner().to_string()).at(dotted_path(&path))
    })
}

/// Encodes `t` as a value of type `ty`; attributes `t` lacks are null.
pub fn encode<T: Serialize>(t: &T, ty: &Type) -> Result<Value, Diagnostic> {
    let json = serde_json::to_value(t).map_err(|e| Diagnostic::error("Encoding state", e.to_string()))?;
    Value::from_json(&json, ty).map_err(|e| Diagnostic::error("Encoding state", format!("provider bug: {e}")))
}

fn dotted_path(path: &str) -> AttrPath {
    AttrPath(
        path.split('.')
            .filter(|s| !s.is_empty() && *s != "?")
            .map(|s| match s.trim_start_matches('[').trim_end_matches(']').parse::<i64>() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Attr(s.to_string()),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object;
    use std::collections::BTreeMap;

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct Cfg {
        name: String,
        size: Option<i64>,
    }

    #[test]
    fn decode_and_encode_structs_naming_bad_attributes() {
        let v = object! {"name" => Value::string("a"), "size" => Value::Null};
        assert_eq!(decode::<Cfg>(&v).unwrap(), Cfg { name: "a".into(), size: None });
        let bad = object! {"name" => Value::int(1), "size" => Value::Null};
        assert_eq!(decode::<Cfg>(&bad).unwrap_err().path, Some(AttrPath::root("name")));
        let unknown = object! {"name" => Value::unknown(), "size" => Value::Null};
        assert!(decode::<Cfg>(&unknown).unwrap_err().summary.contains("`name` is not known"));
        let ty = Type::Object(BTreeMap::from([("name".into(), Type::String), ("size".into(), Type::Number), ("extra".into(), Type::String)]));
        let back = encode(&Cfg { name: "a".into(), size: Some(3) }, &ty).unwrap();
        assert_eq!(back, object! {"name" => Value::string("a"), "size" => Value::int(3), "extra" => Value::Null});
    }
}
