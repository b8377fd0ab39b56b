//! Deleting a `dify_ec2_stack`: every instance drained and terminated (data volumes survive), then its launch
//! template and security group.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::aws::{ec2, elbv2, errors, security_group, AwsClients, OpExt};

use super::observe::Observed;

/// Deregisters and terminates every instance (data volumes survive), then deletes the template and security group.
pub async fn tear_down(cancel: &CancellationToken, aws: &AwsClients, o: &Observed, groups: &BTreeSet<String>, timeout: Duration) -> Result<(), String> {
    let ids: Vec<String> = o.instances.values().chain(o.superseded.iter().map(|(_, i)| i)).filter_map(|i| i.instance_id().map(str::to_string)).collect();
    for id in &ids {
        elbv2::deregister_and_drain(cancel, aws, groups, id, timeout).await?;
    }
    ec2::terminate_and_wait(cancel, aws, &ids, timeout).await?;
    if let Some(lt) = &o.launch_template_id {
        errors::found(aws.ec2.delete_launch_template().launch_template_id(lt).send().await.op("EC2 DeleteLaunchTemplate", lt))?;
    }
    if let Some(sg) = o.security_group.as_ref().and_then(|g| g.group_id()) {
        security_group::delete(cancel, aws, sg, timeout).await?;
    }
    Ok(())
}
