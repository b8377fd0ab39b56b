//! The snapshots of a `dify_persistent_volume`: the seed snapshot uploaded from `source_image` before the volume is
//! created, and the final snapshot taken before it is destroyed.

use std::time::Duration;

use aws_sdk_ec2::types::{Filter, ResourceType, SnapshotState, Volume};

use crate::aws::snapshot_upload::{self, UploadRequest};
use crate::aws::wait::{wait_until, Status};
use crate::aws::{tags, AwsClients, OpExt};
use crate::framework::Ctx;
use crate::log;

use super::Spec;

/// Uploads `source_image` into a snapshot (or reuses the completed one an interrupted apply uploaded) and waits for it.
pub(super) async fn seed_snapshot(ctx: &Ctx, aws: &AwsClients, spec: &Spec, token: &str, timeout: Duration) -> Result<String, String> {
    let source_token = tags::client_token(&[token, "source-image"]);
    let existing = aws
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(Filter::builder().name(format!("tag:{}", tags::CREATE_TOKEN)).values(&source_token).build())
        .send()
        .await
        .op("EC2 DescribeSnapshots", "")?
        .snapshots
        .unwrap_or_default();
    if let Some(done) = existing.iter().find(|s| s.state() == Some(&SnapshotState::Completed)) {
        return Ok(done.snapshot_id().unwrap_or_default().to_string());
    }
    for unfinished in existing.iter().filter_map(|s| s.snapshot_id()) {
        // An interrupted upload leaves a pending snapshot nobody can complete: remove it rather than orphan it.
        let _ = aws.ec2.delete_snapshot().snapshot_id(unfinished).send().await;
    }
    let path = spec.source_image.clone().unwrap_or_default();
    let mut snapshot_tags = spec.tags_all.clone().unwrap_or_default();
    snapshot_tags.insert(tags::NAME.to_string(), format!("{}-source", spec.name));
    snapshot_tags.insert(tags::CREATE_TOKEN.to_string(), source_token.clone());
    let req = UploadRequest {
        path: path.into(),
        volume_size_gib: spec.size_gb,
        description: format!("Seed of Dify data volume {} (dify_persistent_volume)", spec.name),
        tags: snapshot_tags,
        client_token: source_token,
        encrypted: spec.encrypted,
        kms_key_arn: spec.kms_key_id.clone(),
    };
    let uploaded = snapshot_upload::upload(&aws.ebs, &aws.ec2, &ctx.cancel, &req).await?;
    log::info(
        "image uploaded",
        &[("snapshot_id", uploaded.snapshot_id.clone().into()), ("blocks_written", uploaded.blocks_written.into()), ("blocks_skipped", uploaded.blocks_skipped.into())],
    );
    wait_snapshot_completed(ctx, aws, &uploaded.snapshot_id, timeout).await?;
    Ok(uploaded.snapshot_id)
}

async fn wait_snapshot_completed(ctx: &Ctx, aws: &AwsClients, snapshot_id: &str, timeout: Duration) -> Result<(), String> {
    wait_until(&ctx.cancel, timeout, || async {
        let out = aws.ec2.describe_snapshots().snapshot_ids(snapshot_id).send().await.op("EC2 DescribeSnapshots", "")?;
        let snap = out.snapshots().first();
        Ok(match snap.and_then(|s| s.state()) {
            Some(SnapshotState::Completed) => Status::Done(()),
            Some(SnapshotState::Error) => return Err(format!("snapshot {snapshot_id} failed: {}", snap.and_then(|s| s.state_message()).unwrap_or("no reason given"))),
            _ => Status::Pending(format!("snapshot {}", snap.and_then(|s| s.progress()).unwrap_or("pending"))),
        })
    })
    .await
    .map_err(|e| e.to_string())
}

/// Takes (or finds, after an interrupted destroy) the final snapshot of `volume` and waits for it to complete.
pub(super) async fn final_snapshot(ctx: &Ctx, aws: &AwsClients, volume: &Volume, timeout: Duration) -> Result<String, String> {
    let id = volume.volume_id().unwrap_or_default();
    let existing = aws
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(Filter::builder().name(format!("tag:{}", tags::FINAL_SNAPSHOT_OF)).values(id).build())
        .send()
        .await
        .op("EC2 DescribeSnapshots", "")?
        .snapshots
        .unwrap_or_default();
    let snapshot_id = match existing.iter().find(|s| s.state() != Some(&SnapshotState::Error)) {
        Some(s) => s.snapshot_id().unwrap_or_default().to_string(),
        None => {
            let mut snap_tags = tags::user_visible(&tags::from_ec2(volume.tags()));
            if let Some(name) = tags::from_ec2(volume.tags()).get(tags::NAME) {
                snap_tags.insert(tags::NAME.to_string(), format!("{name}-final"));
            }
            snap_tags.insert(tags::FINAL_SNAPSHOT_OF.to_string(), id.to_string());
            aws.ec2
                .create_snapshot()
                .volume_id(id)
                .description(format!("Final snapshot of Dify data volume {id}, taken before it was destroyed"))
                .tag_specifications(tags::specification(ResourceType::Snapshot, &snap_tags))
                .send()
                .await
                .op("EC2 CreateSnapshot", "")?
                .snapshot_id
                .unwrap_or_default()
        }
    };
    wait_snapshot_completed(ctx, aws, &snapshot_id, timeout).await?;
    Ok(snapshot_id)
}
