//! Route 53 record reads and changes: listing the record sets at a name, and sending a change batch then waiting
//! until Route 53 reports it INSYNC.

use std::time::Duration;

use aws_sdk_route53::types::{ChangeBatch, ChangeStatus, ResourceRecordSet, RrType};
use tokio_util::sync::CancellationToken;

use super::wait::{wait_until, During, Status};
use super::{AwsClients, AwsError, OpExt};

/// Up to `max` record sets of `zone`, starting at (`name`, `ty`) (Route 53 lists by name, then type).
pub async fn records_from(aws: &AwsClients, zone: &str, name: &str, ty: RrType, max: i32) -> Result<Vec<ResourceRecordSet>, AwsError> {
    let out = aws
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(name)
        .start_record_type(ty)
        .max_items(max)
        .send()
        .await
        .op("Route 53 ListResourceRecordSets", format!("in {zone}"))?;
    Ok(out.resource_record_sets)
}

/// Sends `batch` to `zone` and waits until Route 53 reports the change INSYNC.
pub async fn change_and_wait(cancel: &CancellationToken, aws: &AwsClients, zone: &str, batch: ChangeBatch, timeout: Duration) -> Result<(), String> {
    let out = aws.route53.change_resource_record_sets().hosted_zone_id(zone).change_batch(batch).send().await.op("Route 53 ChangeResourceRecordSets", format!("in {zone}"))?;
    let id = out.change_info().map(|c| c.id().to_string()).unwrap_or_default();
    wait_until(cancel, timeout, || async {
        let c = aws.route53.get_change().id(&id).send().await.op("Route 53 GetChange", &id)?;
        Ok(match c.change_info().map(|i| i.status()) {
            Some(ChangeStatus::Insync) => Status::Done(()),
            other => Status::Pending(other.map(|s| s.as_str().to_string()).unwrap_or_else(|| "PENDING".into())),
        })
    })
    .await
    .during(format_args!("waiting for change {id} to be INSYNC"))
}
