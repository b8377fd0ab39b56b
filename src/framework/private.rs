//! Private state: provider-only data Terraform stores beside a resource's state and hands back unchanged.

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// Key/value data kept out of the user-visible state (never secrets: Terraform stores it in the state file too).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Private(pub BTreeMap<String, Json>);

impl Private {
    pub fn decode(bytes: &[u8]) -> Private {
        if bytes.is_empty() {
            return Private::default();
        }
        serde_json::from_slice(bytes).map(Private).unwrap_or_default()
    }
    pub fn encode(&self) -> Vec<u8> {
        if self.0.is_empty() {
            return Vec::new();
        }
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key)
    }
    pub fn set(&mut self, key: &str, v: Json) {
        self.0.insert(key.to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_treats_empty_as_nothing() {
        let mut p = Private::default();
        assert!(p.encode().is_empty());
        p.set("resolved_ami", Json::from("ami-1"));
        assert_eq!(Private::decode(&p.encode()), p);
    }
}
