//! An in-memory EBS Data Lifecycle Manager, answered by the AWS proxy itself: it stands in because moto (5.2.5) has
//! no DLM. REST-JSON as the SDK speaks it: lifecycle policies (create, get, list by target tag or state, update,
//! delete) and their tags. It stores what it is given and checks only what the provider relies on DLM to check.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use crate::harness::{MOTO_ACCOUNT, REGION};

#[derive(Default)]
pub struct FakeDlm {
    policies: BTreeMap<String, Json>,
    created: u64,
}

/// The operation a DLM request is, from its method and path (`/policies`, `/policies/{id}/`, `/tags/{arn}`).
pub fn operation(method: &str, path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["policies"]) => "CreateLifecyclePolicy",
        ("GET", ["policies"]) => "GetLifecyclePolicies",
        ("GET", ["policies", _]) => "GetLifecyclePolicy",
        ("PATCH", ["policies", _]) => "UpdateLifecyclePolicy",
        ("DELETE", ["policies", _]) => "DeleteLifecyclePolicy",
        ("POST", ["tags", _]) => "TagResource",
        ("GET", ["tags", _]) => "ListTagsForResource",
        ("DELETE", ["tags", _]) => "UntagResource",
        _ => "Unknown",
    }
    .to_string()
}

/// `%XX` sequences decoded (DLM paths and queries carry ARNs and `key=value` tags).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn not_found(what: &str) -> (u16, Json) {
    (404, json!({"__type": "ResourceNotFoundException", "message": format!("{what} not found"), "Code": "ResourceNotFoundException"}))
}

fn invalid(message: &str) -> (u16, Json) {
    (400, json!({"__type": "InvalidRequestException", "message": message, "Code": "InvalidRequestException"}))
}

impl FakeDlm {
    /// Answers one request: the HTTP status and the JSON body (errors carry their code in `__type`).
    pub fn answer(&mut self, operation: &str, path: &str, query: &str, body: &[u8]) -> (u16, Json) {
        let input: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
        let id = path.trim_matches('/').split('/').nth(1).map(percent_decode).unwrap_or_default();
        match operation {
            "CreateLifecyclePolicy" => {
                for required in ["ExecutionRoleArn", "Description", "State", "PolicyDetails"] {
                    if input.get(required).is_none() {
                        return invalid(&format!("{required} is required"));
                    }
                }
                self.created += 1;
                let id = format!("policy-{:017x}", 0xd1f0_0000 + self.created);
                let mut policy = input.clone();
                policy["PolicyId"] = json!(id);
                policy["PolicyArn"] = json!(format!("arn:aws:dlm:{REGION}:{MOTO_ACCOUNT}:policy/{id}"));
                if policy.get("Tags").is_none() {
                    policy["Tags"] = json!({});
                }
                self.policies.insert(id.clone(), policy);
                (200, json!({"PolicyId": id}))
            }
            "GetLifecyclePolicy" => match self.policies.get(&id) {
                Some(p) => (200, json!({"Policy": p})),
                None => not_found(&id),
            },
            "GetLifecyclePolicies" => {
                let mut target_tags = Vec::new();
                let mut state = None;
                for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                    match k {
                        "targetTags" => target_tags.push(percent_decode(v)),
                        "state" => state = Some(percent_decode(v)),
                        _ => {}
                    }
                }
                let policies: Vec<Json> = self
                    .policies
                    .values()
                    .filter(|p| state.as_ref().is_none_or(|s| p["State"] == json!(s)))
                    .filter(|p| {
                        target_tags.is_empty()
                            || p["PolicyDetails"]["TargetTags"].as_array().into_iter().flatten().any(|t| target_tags.contains(&format!("{}={}", t["Key"].as_str().unwrap_or(""), t["Value"].as_str().unwrap_or(""))))
                    })
                    .map(|p| json!({"PolicyId": p["PolicyId"], "Description": p["Description"], "State": p["State"], "Tags": p["Tags"], "PolicyType": p["PolicyDetails"]["PolicyType"]}))
                    .collect();
                (200, json!({"Policies": policies}))
            }
            "UpdateLifecyclePolicy" => match self.policies.get_mut(&id) {
                Some(p) => {
                    for field in ["ExecutionRoleArn", "State", "Description", "PolicyDetails"] {
                        if let Some(v) = input.get(field) {
                            p[field] = v.clone();
                        }
                    }
                    (200, json!({}))
                }
                None => not_found(&id),
            },
            "DeleteLifecyclePolicy" => match self.policies.remove(&id) {
                Some(_) => (200, json!({})),
                None => not_found(&id),
            },
            "TagResource" | "ListTagsForResource" | "UntagResource" => {
                let Some(policy) = self.policies.values_mut().find(|p| p["PolicyArn"] == json!(id)) else { return not_found(&id) };
                match operation {
                    "TagResource" => {
                        for (k, v) in input["Tags"].as_object().into_iter().flatten() {
                            policy["Tags"][k] = v.clone();
                        }
                        (200, json!({}))
                    }
                    "UntagResource" => {
                        for k in query.split('&').filter_map(|kv| kv.strip_prefix("tagKeys=")).map(percent_decode) {
                            if let Some(tags) = policy["Tags"].as_object_mut() {
                                tags.remove(&k);
                            }
                        }
                        (200, json!({}))
                    }
                    _ => (200, json!({"Tags": policy["Tags"]})),
                }
            }
            other => invalid(&format!("the fake DLM does not implement {other}")),
        }
    }

    /// The stored policies, as DLM would return them from GetLifecyclePolicy.
    pub fn policies(&self) -> Vec<Json> {
        self.policies.values().cloned().collect()
    }
}

#[test]
fn the_fake_names_operations_and_finds_policies_by_target_tag() {
    assert_eq!(operation("GET", "/policies/policy-1/"), "GetLifecyclePolicy");
    assert_eq!(operation("PATCH", "/policies/policy-1"), "UpdateLifecyclePolicy");
    let mut dlm = FakeDlm::default();
    let details = json!({"TargetTags": [{"Key": "dify:backup", "Value": "vol-1"}]});
    let body = json!({"ExecutionRoleArn": "arn:r", "Description": "d", "State": "ENABLED", "PolicyDetails": details}).to_string();
    let (status, created) = dlm.answer("CreateLifecyclePolicy", "/policies", "", body.as_bytes());
    assert_eq!(status, 200);
    let (_, found) = dlm.answer("GetLifecyclePolicies", "/policies", "targetTags=dify%3Abackup%3Dvol-1", b"");
    assert_eq!(found["Policies"][0]["PolicyId"], created["PolicyId"]);
    let (_, none) = dlm.answer("GetLifecyclePolicies", "/policies", "targetTags=dify%3Abackup%3Dvol-2", b"");
    assert_eq!(none["Policies"], json!([]));
    assert_eq!(dlm.answer("CreateLifecyclePolicy", "/policies", "", b"{}").0, 400);
}
