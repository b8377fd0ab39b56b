//! Making the volume: its idempotency token, CreateVolume, adoption of what an interrupted create made, and the
//! wait until it is usable.

use std::time::Duration;

use aws_sdk_ec2::types::{ResourceType, Volume, VolumeState, VolumeType};
use tokio_util::sync::CancellationToken;

use super::{Spec, TYPE_NAME};
use crate::aws::wait::{wait_until, Status, WaitError};
use crate::aws::{ec2, tags, AwsClients, OpExt};
use crate::log;

/// The idempotency token of a create: everything that defines the volume, so a retried apply of the same plan
/// finds the volume an interrupted one made, and a different volume never matches.
pub(super) fn token(spec: &Spec) -> String {
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    tags::client_token(&[
        TYPE_NAME,
        &spec.name,
        &spec.availability_zone,
        &spec.size_gb.to_string(),
        &spec.r#type,
        &num(spec.iops),
        &num(spec.throughput),
        &spec.encrypted.to_string(),
        spec.kms_key_id.as_deref().unwrap_or_default(),
        spec.snapshot_id.as_deref().unwrap_or_default(),
        spec.source_image_sha256.as_deref().unwrap_or_default(),
    ])
}

/// The volume an interrupted apply of the same plan made (found by its token tag: the emulator ignores ClientToken),
/// or a new one.
pub(super) async fn find_or_create(aws: &AwsClients, spec: &Spec, token: &str) -> Result<String, String> {
    if let Some(id) = ec2::find_volume_by_tag(aws, tags::CREATE_TOKEN, token).await? {
        log::info("adopting the volume an interrupted apply created", &[("volume_id", id.clone().into())]);
        return Ok(id);
    }
    create_volume(aws, spec, token).await
}

/// Waits until the volume is available (or already in use); `None` when Terraform stopped the wait.
pub(super) async fn wait_available(cancel: &CancellationToken, aws: &AwsClients, volume_id: &str, timeout: Duration) -> Result<Option<Volume>, WaitError> {
    wait_until(cancel, timeout, || async {
        let v = ec2::find_volume(aws, volume_id).await?;
        Ok(match v.as_ref().and_then(|v| v.state()) {
            Some(VolumeState::Available) | Some(VolumeState::InUse) => Status::Done(v),
            Some(VolumeState::Error) => return Err(format!("volume {volume_id} entered the error state")),
            other => Status::Pending(other.map(|s| s.as_str().to_string()).unwrap_or_else(|| "not visible yet".into())),
        })
    })
    .await
}

async fn create_volume(aws: &AwsClients, spec: &Spec, token: &str) -> Result<String, String> {
    let mut all_tags = spec.tags_all.clone().unwrap_or_default();
    all_tags.insert(tags::NAME.to_string(), spec.name.clone());
    all_tags.insert(tags::CREATE_TOKEN.to_string(), token.to_string());
    let mut req = aws
        .ec2
        .create_volume()
        .availability_zone(&spec.availability_zone)
        .size(spec.size_gb as i32)
        .volume_type(VolumeType::from(spec.r#type.as_str()))
        .encrypted(spec.encrypted)
        .client_token(token)
        .tag_specifications(tags::specification(ResourceType::Volume, &all_tags));
    if let Some(i) = spec.iops {
        req = req.iops(i as i32);
    }
    if let Some(t) = spec.throughput {
        req = req.throughput(t as i32);
    }
    if let Some(k) = &spec.kms_key_id {
        req = req.kms_key_id(k);
    }
    if let Some(s) = &spec.snapshot_id {
        req = req.snapshot_id(s);
    }
    let out = req.send().await.op("EC2 CreateVolume", "")?;
    out.volume_id.ok_or_else(|| "EC2 CreateVolume returned no volume id".to_string())
}
