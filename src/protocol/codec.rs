//! DynamicValue codecs: Terraform's msgpack and JSON encodings of values, decoded and encoded against a type.

use std::collections::BTreeMap;
use std::io::Cursor;

use rmpv::Value as Mp;

use crate::framework::value::{implied_type, Number, Refinements, Type, Value};

/// cty's extension code for an unknown value without refinements.
const UNKNOWN_EXT: i8 = 0;
/// Key in a refined unknown's payload that is present only when the value is definitely not null.
const REFINEMENT_NULLNESS: i64 = 1;

/// Decodes a msgpack DynamicValue of type `ty`.
pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, String> {
    let mut cur = Cursor::new(bytes);
    let mp = rmpv::decode::read_value(&mut cur).map_err(|e| format!("invalid msgpack: {e}"))?;
    from_mp(mp, ty, &mut Vec::new())
}

/// Encodes a value of type `ty` as a msgpack DynamicValue.
pub fn encode_msgpack(v: &Value, ty: &Type) -> Result<Vec<u8>, String> {
    let mp = to_mp(v, ty, &mut Vec::new())?;
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &mp).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes a JSON DynamicValue of type `ty`. JSON cannot carry unknown values.
pub fn decode_json(bytes: &[u8], ty: &Type) -> Result<Value, String> {
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    Value::from_json(&json, ty)
}

pub fn encode_json(v: &Value) -> Result<Vec<u8>, String> {
    let json = v.to_json().map_err(|path| format!("{path}: unknown values cannot be encoded as JSON"))?;
    serde_json::to_vec(&json).map_err(|e| e.to_string())
}

fn at(path: &[String], msg: String) -> String {
    if path.is_empty() {
        msg
    } else {
        format!("{}: {msg}", path.join("."))
    }
}

fn from_mp(mp: Mp, ty: &Type, path: &mut Vec<String>) -> Result<Value, String> {
    if let Mp::Ext(code, raw) = mp {
        let definitely_not_null = code != UNKNOWN_EXT && refinement_keys(&raw).contains(&REFINEMENT_NULLNESS);
        return Ok(Value::Unknown((code != UNKNOWN_EXT).then_some(Refinements { ext_type: code, raw, definitely_not_null })));
    }
    if mp.is_nil() {
        return Ok(Value::Null);
    }
    Ok(match ty {
        Type::Bool => Value::Bool(mp.as_bool().ok_or_else(|| at(path, format!("expected bool, got {mp}")))?),
        Type::Number => Value::Number(match mp {
            Mp::Integer(i) => match i.as_i64() {
                Some(i) => Number::Int(i),
                None => Number::Decimal(i.to_string()),
            },
            Mp::F32(f) => Number::Float(f as f64),
            Mp::F64(f) => Number::Float(f),
            Mp::String(s) => Number::Decimal(s.into_str().ok_or_else(|| at(path, "invalid number text".into()))?),
            other => return Err(at(path, format!("expected number, got {other}"))),
        }),
        Type::String => match mp {
            Mp::String(s) => Value::String(s.into_str().ok_or_else(|| at(path, "invalid UTF-8 in string".into()))?),
            other => return Err(at(path, format!("expected string, got {other}"))),
        },
        Type::List(t) | Type::Set(t) => {
            let items = match mp {
                Mp::Array(a) => a,
                other => return Err(at(path, format!("expected array, got {other}"))),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(i.to_string());
                out.push(from_mp(item, t, path)?);
                path.pop();
            }
            if matches!(ty, Type::Set(_)) {
                Value::Set(out)
            } else {
                Value::List(out)
            }
        }
        Type::Tuple(ts) => {
            let items = match mp {
                Mp::Array(a) if a.len() == ts.len() => a,
                other => return Err(at(path, format!("expected tuple of {}, got {other}", ts.len()))),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, t)) in items.into_iter().zip(ts).enumerate() {
                path.push(i.to_string());
                out.push(from_mp(item, t, path)?);
                path.pop();
            }
            Value::Tuple(out)
        }
        Type::Map(t) => {
            let mut out = BTreeMap::new();
            for (k, v) in map_entries(mp, path)? {
                path.push(k.clone());
                let v = from_mp(v, t, path)?;
                path.pop();
                out.insert(k, v);
            }
            Value::Map(out)
        }
        Type::Object(attrs) => {
            let mut out: BTreeMap<String, Value> = attrs.keys().map(|k| (k.clone(), Value::Null)).collect();
            for (k, v) in map_entries(mp, path)? {
                let t = attrs.get(&k).ok_or_else(|| at(path, format!("unsupported attribute {k:?}")))?;
                path.push(k.clone());
                let v = from_mp(v, t, path)?;
                path.pop();
                out.insert(k, v);
            }
            Value::Object(out)
        }
        Type::Dynamic => {
            // A dynamic value travels as [type as JSON, value].
            let mut parts = match mp {
                Mp::Array(a) if a.len() == 2 => a,
                other => return Err(at(path, format!("expected [type, value] for a dynamic value, got {other}"))),
            };
            let value = parts.pop().unwrap_or(Mp::Nil);
            let type_json = match parts.pop() {
                Some(Mp::Binary(b)) => b,
                Some(Mp::String(s)) => s.into_bytes(),
                _ => return Err(at(path, "dynamic value without a type".into())),
            };
            let json: serde_json::Value = serde_json::from_slice(&type_json).map_err(|e| at(path, e.to_string()))?;
            let inner = Type::from_json(&json).map_err(|e| at(path, e))?;
            from_mp(value, &inner, path)?
        }
    })
}

fn map_entries(mp: Mp, path: &[String]) -> Result<Vec<(String, Mp)>, String> {
    match mp {
        Mp::Map(entries) => entries
            .into_iter()
            .map(|(k, v)| match k {
                Mp::String(s) => s.into_str().map(|s| (s, v)).ok_or_else(|| at(path, "invalid UTF-8 key".into())),
                other => Err(at(path, format!("expected string key, got {other}"))),
            })
            .collect(),
        other => Err(at(path, format!("expected map, got {other}"))),
    }
}

fn refinement_keys(raw: &[u8]) -> Vec<i64> {
    match rmpv::decode::read_value(&mut Cursor::new(raw)) {
        Ok(Mp::Map(entries)) => entries.iter().filter_map(|(k, _)| k.as_i64()).collect(),
        _ => Vec::new(),
    }
}

fn to_mp(v: &Value, ty: &Type, path: &mut Vec<String>) -> Result<Mp, String> {
    if let Type::Dynamic = ty {
        if let Value::Unknown(_) = v {
            return to_mp(v, &Type::Bool, path);
        }
        let inner = implied_type(v);
        let type_json = serde_json::to_vec(&inner.to_json()).map_err(|e| e.to_string())?;
        return Ok(Mp::Array(vec![Mp::Binary(type_json), to_mp(v, &inner, path)?]));
    }
    Ok(match v {
        Value::Null => Mp::Nil,
        Value::Unknown(None) => Mp::Ext(UNKNOWN_EXT, vec![0]),
        Value::Unknown(Some(r)) => Mp::Ext(r.ext_type, r.raw.clone()),
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => match n {
            Number::Int(i) => Mp::from(*i),
            Number::Float(f) => Mp::F64(*f),
            Number::Decimal(s) => Mp::from(s.as_str()),
        },
        Value::String(s) => Mp::from(s.as_str()),
        Value::List(items) | Value::Set(items) => {
            let elem = match ty {
                Type::List(t) | Type::Set(t) => t,
                other => return Err(at(path, format!("a list does not fit type {}", other.to_json()))),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                out.push(to_mp(item, elem, path)?);
                path.pop();
            }
            Mp::Array(out)
        }
        Value::Tuple(items) => {
            let ts = match ty {
                Type::Tuple(ts) if ts.len() == items.len() => ts,
                other => return Err(at(path, format!("a tuple does not fit type {}", other.to_json()))),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, t)) in items.iter().zip(ts).enumerate() {
                path.push(i.to_string());
                out.push(to_mp(item, t, path)?);
                path.pop();
            }
            Mp::Array(out)
        }
        Value::Map(m) | Value::Object(m) => match ty {
            Type::Map(t) => {
                let mut out = Vec::with_capacity(m.len());
                for (k, item) in m {
                    path.push(k.clone());
                    out.push((Mp::from(k.as_str()), to_mp(item, t, path)?));
                    path.pop();
                }
                Mp::Map(out)
            }
            Type::Object(attrs) => {
                if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(at(path, format!("attribute {extra:?} is not in the schema")));
                }
                let mut out = Vec::with_capacity(attrs.len());
                for (k, t) in attrs {
                    path.push(k.clone());
                    let item = m.get(k).unwrap_or(&Value::Null);
                    out.push((Mp::from(k.as_str()), to_mp(item, t, path)?));
                    path.pop();
                }
                Mp::Map(out)
            }
            other => return Err(at(path, format!("an object does not fit type {}", other.to_json()))),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object;

    fn network_type() -> Type {
        Type::Object(BTreeMap::from([
            ("vpc_id".to_string(), Type::String),
            ("count".to_string(), Type::Number),
            ("ids".to_string(), Type::list(Type::String)),
            ("tags".to_string(), Type::map(Type::String)),
            ("any".to_string(), Type::Dynamic),
        ]))
    }

    #[test]
    fn msgpack_round_trips_known_null_and_unknown_values() {
        let v = object! {
            "vpc_id" => Value::unknown(),
            "count" => Value::Number(Number::Float(1.5)),
            "ids" => Value::List(vec![Value::string("a"), Value::Null]),
            "tags" => Value::Null,
            "any" => object!{"x" => Value::int(3)},
        };
        let ty = network_type();
        let bytes = encode_msgpack(&v, &ty).unwrap();
        assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), v);
    }

    #[test]
    fn refined_unknown_round_trips_byte_for_byte() {
        // cty's refined unknown: ext 12 carrying {1: false, 2: "vpc-"} (not null, string prefix).
        let mut payload = Vec::new();
        rmpv::encode::write_value(&mut payload, &Mp::Map(vec![(Mp::from(1), Mp::from(false)), (Mp::from(2), Mp::from("vpc-"))])).unwrap();
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &Mp::Ext(12, payload)).unwrap();
        let v = decode_msgpack(&bytes, &Type::String).unwrap();
        match &v {
            Value::Unknown(Some(r)) => assert!(r.definitely_not_null),
            other => panic!("expected refined unknown, got {other:?}"),
        }
        assert_eq!(encode_msgpack(&v, &Type::String).unwrap(), bytes);
    }

    #[test]
    fn bad_input_names_the_attribute_path() {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &Mp::Map(vec![(Mp::from("ids"), Mp::Array(vec![Mp::from(true)]))])).unwrap();
        let err = decode_msgpack(&bytes, &network_type()).unwrap_err();
        assert!(err.starts_with("ids.0:"), "{err}");
    }

    #[test]
    fn json_codec_decodes_and_refuses_unknowns() {
        let v = decode_json(br#"{"vpc_id":"vpc-1","ids":["a"]}"#, &network_type()).unwrap();
        assert_eq!(v.get("vpc_id"), &Value::string("vpc-1"));
        assert_eq!(v.get("tags"), &Value::Null);
        assert!(encode_json(&object! {"vpc_id" => Value::unknown()}).unwrap_err().starts_with("vpc_id"));
    }
}
