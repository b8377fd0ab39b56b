//! The pre-replace snapshot of a data volume: taken after the old instance stopped and before the volume is detached
//! to move to its replacement, and the retention of the last `snapshots_to_keep` of them per volume.

use aws_sdk_ec2::types::{Filter, ResourceType};

use crate::aws::{tags, AwsClients, OpExt};

use super::{Spec, STACK_TAG};

/// `dify:reason` on a snapshot taken before a replacement moved the volume.
pub const BEFORE_REPLACE: &str = "before-replace";
pub const DEFAULT_SNAPSHOTS_TO_KEEP: i64 = 3;

/// Calls EC2 CreateSnapshot on `volume` (attached to the stopped instance `instance_id`) and returns the snapshot id.
/// It does not wait for the snapshot to complete: an EBS snapshot holds the volume as it was at the call, whatever
/// happens to the volume afterwards, so waiting would only lengthen the downtime of the replacement.
pub async fn take_before_replace(aws: &AwsClients, spec: &Spec, instance_id: &str, volume: &str) -> Result<String, String> {
    let mut snap_tags = spec.tags_all.clone().unwrap_or_default();
    snap_tags.insert(tags::NAME.to_string(), format!("{}-{volume}-before-replace", spec.name));
    snap_tags.insert(STACK_TAG.to_string(), spec.name.clone());
    snap_tags.insert(tags::SNAPSHOT_OF.to_string(), volume.to_string());
    snap_tags.insert(tags::SNAPSHOT_REASON.to_string(), BEFORE_REPLACE.to_string());
    let out = aws
        .ec2
        .create_snapshot()
        .volume_id(volume)
        .description(format!("Dify data volume {volume} of stack {} before instance {instance_id} was replaced", spec.name))
        .tag_specifications(tags::specification(ResourceType::Snapshot, &snap_tags))
        .send()
        .await
        .op("EC2 CreateSnapshot", volume)?;
    out.snapshot_id.ok_or_else(|| format!("EC2 CreateSnapshot ({volume}) returned no snapshot id"))
}

/// Deletes the pre-replace snapshots of `volume` this provider took beyond the newest `keep`; `newest` (just taken,
/// perhaps not listed yet) always counts as the first kept. Only snapshots owned by this account and tagged both
/// `dify:snapshot-of = volume` and `dify:reason = before-replace` are ever considered. Returns the deleted ids.
pub async fn prune_before_replace(aws: &AwsClients, volume: &str, newest: &str, keep: usize) -> Result<Vec<String>, String> {
    let mut older: Vec<_> = aws
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(Filter::builder().name(format!("tag:{}", tags::SNAPSHOT_OF)).values(volume).build())
        .filters(Filter::builder().name(format!("tag:{}", tags::SNAPSHOT_REASON)).values(BEFORE_REPLACE).build())
        .send()
        .await
        .op("EC2 DescribeSnapshots", volume)?
        .snapshots
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.snapshot_id() != Some(newest))
        .collect();
    // Newest first; the id breaks ties between snapshots started in the same instant.
    older.sort_by(|a, b| (b.start_time(), b.snapshot_id()).cmp(&(a.start_time(), a.snapshot_id())));
    let mut deleted = Vec::new();
    for s in older.iter().skip(keep.saturating_sub(1)) {
        let id = s.snapshot_id().unwrap_or_default();
        aws.ec2.delete_snapshot().snapshot_id(id).send().await.op("EC2 DeleteSnapshot", id)?;
        deleted.push(id.to_string());
    }
    Ok(deleted)
}
