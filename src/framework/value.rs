//! Terraform values and types as the provider sees them: known, null or unknown, never msgpack.

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// A Terraform (cty) type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Bool,
    Number,
    String,
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }
    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }
    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }

    /// The type constraint in Terraform's JSON type notation (`"string"`, `["list","string"]`, ...).
    pub fn to_json(&self) -> Json {
        match self {
            Type::Bool => Json::from("bool"),
            Type::Number => Json::from("number"),
            Type::String => Json::from("string"),
            Type::Dynamic => Json::from("dynamic"),
            Type::List(t) => Json::Array(vec!["list".into(), t.to_json()]),
            Type::Set(t) => Json::Array(vec!["set".into(), t.to_json()]),
            Type::Map(t) => Json::Array(vec!["map".into(), t.to_json()]),
            Type::Object(attrs) => Json::Array(vec![
                "object".into(),
                Json::Object(attrs.iter().map(|(k, t)| (k.clone(), t.to_json())).collect()),
            ]),
            Type::Tuple(ts) => Json::Array(vec!["tuple".into(), Json::Array(ts.iter().map(Type::to_json).collect())]),
        }
    }

    /// Parses Terraform's JSON type notation.
    pub fn from_json(json: &Json) -> Result<Type, String> {
        match json {
            Json::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                other => Err(format!("unknown primitive type {other:?}")),
            },
            Json::Array(parts) if parts.len() >= 2 => {
                let kind = parts[0].as_str().unwrap_or_default();
                match kind {
                    "list" => Ok(Type::list(Type::from_json(&parts[1])?)),
                    "set" => Ok(Type::set(Type::from_json(&parts[1])?)),
                    "map" => Ok(Type::map(Type::from_json(&parts[1])?)),
                    "object" => {
                        let attrs = parts[1].as_object().ok_or("object type without attributes")?;
                        let mut out = BTreeMap::new();
                        for (k, v) in attrs {
                            out.insert(k.clone(), Type::from_json(v)?);
                        }
                        Ok(Type::Object(out))
                    }
                    "tuple" => {
                        let elems = parts[1].as_array().ok_or("tuple type without elements")?;
                        Ok(Type::Tuple(elems.iter().map(Type::from_json).collect::<Result<_, _>>()?))
                    }
                    other => Err(format!("unknown type kind {other:?}")),
                }
            }
            other => Err(format!("invalid type {other}")),
        }
    }
}

/// A number as Terraform sent it: integers stay exact, other values keep their decimal text.
#[derive(Clone, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
    /// Arbitrary-precision decimal text, as cty sends numbers that fit neither.
    Decimal(String),
}

impl Number {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Number::Int(i) => Some(*i as f64),
            Number::Float(f) => Some(*f),
            Number::Decimal(s) => s.parse().ok(),
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Number::Decimal(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// What Terraform already knows about a value that is not known yet ("refinements").
///
/// Kept as the raw msgpack payload Terraform sent, so a refined unknown round-trips byte for byte;
/// `definitely_not_null` is decoded from it for plan helpers that care.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Refinements {
    /// The msgpack extension code Terraform used (cty uses 0 for plain and 12 for refined unknowns).
    pub ext_type: i8,
    pub raw: Vec<u8>,
    pub definitely_not_null: bool,
}

/// A Terraform value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Unknown(Option<Refinements>),
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
}

impl Value {
    pub fn unknown() -> Value {
        Value::Unknown(None)
    }
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown(_))
    }
    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown(_) => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v.iter().all(Value::is_wholly_known),
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
    /// Elements of a list, set or tuple.
    pub fn elements(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }
    /// Entries of a map or attributes of an object.
    pub fn entries(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) | Value::Object(m) => Some(m),
            _ => None,
        }
    }
    pub fn entries_mut(&mut self) -> Option<&mut BTreeMap<String, Value>> {
        match self {
            Value::Map(m) | Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// An object attribute; `Null` when this is not an object or has no such attribute.
    pub fn get(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Value::Object(m) => m.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// Sets an object attribute (no effect on other kinds of value).
    pub fn set(&mut self, name: &str, v: Value) {
        if let Value::Object(m) = self {
            m.insert(name.to_string(), v);
        }
    }

    /// This value with every unknown replaced by null: for decoding a plan whose computed parts are not known yet.
    pub fn without_unknowns(&self) -> Value {
        match self {
            Value::Unknown(_) => Value::Null,
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.without_unknowns())).collect()),
            Value::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), v.without_unknowns())).collect()),
            Value::List(items) => Value::List(items.iter().map(Value::without_unknowns).collect()),
            Value::Set(items) => Value::Set(items.iter().map(Value::without_unknowns).collect()),
            Value::Tuple(items) => Value::Tuple(items.iter().map(Value::without_unknowns).collect()),
            other => other.clone(),
        }
    }

    /// A value that is null of every kind: the starting point for a state built attribute by attribute.
    pub fn null_object(ty: &Type) -> Value {
        match ty {
            Type::Object(attrs) => Value::Object(attrs.keys().map(|k| (k.clone(), Value::Null)).collect()),
            _ => Value::Null,
        }
    }

    /// Converts to JSON. Fails with the path of the first unknown value, which JSON cannot carry.
    pub fn to_json(&self) -> Result<Json, String> {
        self.to_json_at(&mut Vec::new())
    }

    fn to_json_at(&self, path: &mut Vec<String>) -> Result<Json, String> {
        Ok(match self {
            Value::Null => Json::Null,
            Value::Unknown(_) => return Err(path.join(".")),
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(Number::Int(i)) => Json::from(*i),
            Value::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
            Value::Number(Number::Decimal(s)) => serde_json::from_str::<Json>(s).unwrap_or_else(|_| Json::String(s.clone())),
            Value::String(s) => Json::String(s.clone()),
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                let mut out = Vec::with_capacity(v.len());
                for (i, e) in v.iter().enumerate() {
                    path.push(i.to_string());
                    out.push(e.to_json_at(path)?);
                    path.pop();
                }
                Json::Array(out)
            }
            Value::Map(m) | Value::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, e) in m {
                    path.push(k.clone());
                    out.insert(k.clone(), e.to_json_at(path)?);
                    path.pop();
                }
                Json::Object(out)
            }
        })
    }

    /// Converts JSON into a value of the given type, as Terraform's JSON value encoding defines it.
    /// Object attributes missing from the JSON are null.
    pub fn from_json(json: &Json, ty: &Type) -> Result<Value, String> {
        if json.is_null() {
            return Ok(Value::Null);
        }
        Ok(match ty {
            Type::Bool => match json {
                Json::Bool(b) => Value::Bool(*b),
                Json::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
                _ => return Err(format!("expected bool, got {json}")),
            },
            Type::Number => match json {
                Json::Number(n) => Value::Number(json_number(n)),
                Json::String(s) => {
                    let n: serde_json::Number = s.parse().map_err(|_| format!("expected number, got {s:?}"))?;
                    Value::Number(json_number(&n))
                }
                _ => return Err(format!("expected number, got {json}")),
            },
            Type::String => match json {
                Json::String(s) => Value::String(s.clone()),
                Json::Number(n) => Value::String(n.to_string()),
                Json::Bool(b) => Value::String(b.to_string()),
                _ => return Err(format!("expected string, got {json}")),
            },
            Type::List(t) | Type::Set(t) => {
                let arr = json.as_array().ok_or_else(|| format!("expected array, got {json}"))?;
                let items = arr.iter().map(|e| Value::from_json(e, t)).collect::<Result<Vec<_>, _>>()?;
                if matches!(ty, Type::Set(_)) {
                    Value::Set(items)
                } else {
                    Value::List(items)
                }
            }
            Type::Tuple(ts) => {
                let arr = json.as_array().ok_or_else(|| format!("expected array, got {json}"))?;
                if arr.len() != ts.len() {
                    return Err(format!("expected tuple of {} elements, got {}", ts.len(), arr.len()));
                }
                Value::Tuple(arr.iter().zip(ts).map(|(e, t)| Value::from_json(e, t)).collect::<Result<_, _>>()?)
            }
            Type::Map(t) => {
                let obj = json.as_object().ok_or_else(|| format!("expected object, got {json}"))?;
                let mut out = BTreeMap::new();
                for (k, v) in obj {
                    out.insert(k.clone(), Value::from_json(v, t).map_err(|e| format!("{k}: {e}"))?);
                }
                Value::Map(out)
            }
            Type::Object(attrs) => {
                let obj = json.as_object().ok_or_else(|| format!("expected object, got {json}"))?;
                if let Some(extra) = obj.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(format!("unsupported attribute {extra:?}"));
                }
                let mut out = BTreeMap::new();
                for (k, t) in attrs {
                    let v = match obj.get(k) {
                        Some(v) => Value::from_json(v, t).map_err(|e| format!("{k}: {e}"))?,
                        None => Value::Null,
                    };
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Type::Dynamic => dynamic_from_json(json),
        })
    }
}

fn json_number(n: &serde_json::Number) -> Number {
    if let Some(i) = n.as_i64() {
        Number::Int(i)
    } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && n.to_string().parse::<f64>().is_ok()) {
        if n.is_f64() {
            Number::Float(f)
        } else {
            Number::Decimal(n.to_string())
        }
    } else {
        Number::Decimal(n.to_string())
    }
}

/// A JSON value of no declared type: objects become objects, arrays tuples.
fn dynamic_from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(json_number(n)),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Tuple(a.iter().map(dynamic_from_json).collect()),
        Json::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), dynamic_from_json(v))).collect()),
    }
}

/// The type a value has on its own, for values of `dynamic` type that must carry their type on the wire.
pub fn implied_type(v: &Value) -> Type {
    match v {
        Value::Null | Value::Unknown(_) => Type::Dynamic,
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::List(items) => Type::list(items.first().map(implied_type).unwrap_or(Type::Dynamic)),
        Value::Set(items) => Type::set(items.first().map(implied_type).unwrap_or(Type::Dynamic)),
        Value::Map(m) => Type::map(m.values().next().map(implied_type).unwrap_or(Type::Dynamic)),
        Value::Object(m) => Type::Object(m.iter().map(|(k, v)| (k.clone(), implied_type(v))).collect()),
        Value::Tuple(items) => Type::Tuple(items.iter().map(implied_type).collect()),
    }
}

/// Builds an object value from attribute pairs (test and state-building convenience).
#[macro_export]
macro_rules! object {
    ($($k:expr => $v:expr),* $(,)?) => {{
        let mut m = std::collections::BTreeMap::new();
        $( m.insert($k.to_string(), $v); )*
        $crate::framework::value::Value::Object(m)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_json_round_trips() {
        let ty = Type::Object(BTreeMap::from([
            ("a".to_string(), Type::list(Type::String)),
            ("b".to_string(), Type::Tuple(vec![Type::Number, Type::Bool])),
            ("c".to_string(), Type::map(Type::set(Type::Dynamic))),
        ]));
        assert_eq!(Type::from_json(&ty.to_json()).unwrap(), ty);
    }

    #[test]
    fn json_conversion_fills_missing_attributes_with_null_and_names_unknown_paths() {
        let ty = Type::Object(BTreeMap::from([
            ("name".to_string(), Type::String),
            ("tags".to_string(), Type::map(Type::String)),
        ]));
        let v = Value::from_json(&serde_json::json!({"name": "x"}), &ty).unwrap();
        assert_eq!(v.get("tags"), &Value::Null);
        let mut with_unknown = v.clone();
        with_unknown.set("tags", Value::Map(BTreeMap::from([("k".to_string(), Value::unknown())])));
        assert_eq!(with_unknown.to_json().unwrap_err(), "tags.k");
        assert!(Value::from_json(&serde_json::json!({"nope": 1}), &ty).unwrap_err().contains("nope"));
    }
}
