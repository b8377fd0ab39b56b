//! Tags: conversion to and from EC2 tags, the provider's ownership tags, and idempotency tokens.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use sha2::{Digest, Sha256};

use super::OpExt;

/// The Name tag, managed through each resource's `name`.
pub const NAME: &str = "Name";
/// Prefix of the tags the provider manages itself (ownership, idempotency); never shown in `tags`.
pub const INTERNAL_PREFIX: &str = "dify:";
/// Marks an object created by an apply, with the idempotency token of that create: a retried or interrupted
/// apply finds the object by it instead of making a second one.
pub const CREATE_TOKEN: &str = "dify:create-token";
/// On every object a `dify_alb` owns: the ALB's name.
pub const OWNER_ALB: &str = "dify:alb";
/// On a final snapshot: the volume it was taken of.
pub const FINAL_SNAPSHOT_OF: &str = "dify:final-snapshot-of";
/// On a snapshot a `dify_ec2_stack` took of a data volume: the volume it was taken of.
pub const SNAPSHOT_OF: &str = "dify:snapshot-of";
/// On a snapshot a `dify_ec2_stack` took: why (`before-replace`).
pub const SNAPSHOT_REASON: &str = "dify:reason";
/// On a volume with a `backup` block: its own id, the tag its Data Lifecycle Manager policy targets.
pub const BACKUP: &str = "dify:backup";
/// On a scheduled (DLM) snapshot: the volume it was taken of.
pub const BACKUP_OF: &str = "dify:backup-of";

/// Why an instance tag key cannot be carried in instance metadata (which the stack's instances need, to find their
/// data volume), or `None`. EC2 then refuses the launch: keys may hold only letters, digits and `+ - = . , _ : @`,
/// and may not be `.`, `..` or `_index`.
pub fn metadata_key_problem(key: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+-=.,_:@".contains(c);
    if key.is_empty() || matches!(key, "." | ".." | "_index") {
        return Some(format!("{key:?} is a tag key instance metadata cannot carry"));
    }
    key.chars().find(|c| !allowed(*c)).map(|c| {
        format!("{key:?} holds {c:?}: instance tags are exposed to instance metadata (the instances read their data volume's id there), which takes tag keys of letters, digits and + - = . , _ : @ only, so EC2 would refuse the launch. Rename the key (for example {:?})", key.replace(|c: char| !allowed(c), "-"))
    })
}

pub fn to_ec2(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub fn from_ec2(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

pub fn specification(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder().resource_type(kind).set_tags(Some(to_ec2(tags))).build()
}

/// The tags a user manages (`tags_all`): everything but the Name tag and the provider's internal tags.
pub fn user_visible(all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    all.iter().filter(|(k, _)| k.as_str() != NAME && !k.starts_with(INTERNAL_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// What to add or change, and which keys to remove, to go from `current` to `wanted` (internal tags are left alone).
pub fn diff(current: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> (BTreeMap<String, String>, Vec<String>) {
    let upsert = wanted.iter().filter(|(k, v)| current.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    // AWS's own tags (`aws:…`) cannot be removed, and the provider's internal ones are managed elsewhere.
    let remove = current.keys().filter(|k| !wanted.contains_key(*k) && !k.starts_with(INTERNAL_PREFIX) && !k.starts_with("aws:")).cloned().collect();
    (upsert, remove)
}

/// Makes the EC2 tags of `id` go from `current` to `wanted` (internal tags are left alone).
pub async fn sync_ec2(ec2: &aws_sdk_ec2::Client, id: &str, current: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> Result<(), String> {
    let (upsert, remove) = diff(current, wanted);
    if !upsert.is_empty() {
        ec2.create_tags().resources(id).set_tags(Some(to_ec2(&upsert))).send().await.op("EC2 CreateTags", id)?;
    }
    if !remove.is_empty() {
        let keys = remove.iter().map(|k| Tag::builder().key(k).build()).collect();
        ec2.delete_tags().resources(id).set_tags(Some(keys)).send().await.op("EC2 DeleteTags", id)?;
    }
    Ok(())
}

/// A deterministic idempotency token (at most 64 characters, as EC2 allows) from the parts that identify a create.
pub fn client_token(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    format!("dify-{}", digest.iter().take(24).map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_adds_changes_and_removes_but_never_internal_tags() {
        let current = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string()), (CREATE_TOKEN.to_string(), "t".to_string())]);
        let wanted = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "3".to_string()), ("c".to_string(), "4".to_string())]);
        let (upsert, remove) = diff(&current, &wanted);
        assert_eq!(upsert.len(), 2);
        assert!(remove.is_empty());
        let (_, remove) = diff(&wanted, &BTreeMap::new());
        assert_eq!(remove.len(), 3);
    }

    #[test]
    fn client_tokens_are_stable_and_short() {
        let t = client_token(&["dify-data", "us-east-1a", "20"]);
        assert_eq!(t, client_token(&["dify-data", "us-east-1a", "20"]));
        assert_ne!(t, client_token(&["dify-data", "us-east-1a", "21"]));
        assert!(t.len() <= 64);
    }
}
