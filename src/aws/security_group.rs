//! Security group chores every resource that owns one shares: applying ingress changes, and deleting the group
//! once AWS has released the network interfaces that use it.

use std::time::Duration;

use aws_sdk_ec2::types::IpPermission;
use tokio_util::sync::CancellationToken;

use super::wait::{wait_until, Status};
use super::{errors, AwsClients};

/// Revokes, then authorizes, ingress rules on group `id` (each call only when there is something to send).
pub async fn apply_ingress(aws: &AwsClients, id: &str, revoke: Vec<IpPermission>, authorize: Vec<IpPermission>) -> Result<(), String> {
    if !revoke.is_empty() {
        aws.ec2
            .revoke_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(revoke))
            .send()
            .await
            .map_err(|e| format!("EC2 RevokeSecurityGroupIngress {id}: {}", errors::describe(&e)))?;
    }
    if !authorize.is_empty() {
        aws.ec2
            .authorize_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(authorize))
            .send()
            .await
            .map_err(|e| format!("EC2 AuthorizeSecurityGroupIngress {id}: {}", errors::describe(&e)))?;
    }
    Ok(())
}

/// Deletes group `id`, retrying `DependencyViolation` (network interfaces still being released) within `timeout`.
pub async fn delete(cancel: &CancellationToken, aws: &AwsClients, id: &str, timeout: Duration) -> Result<(), String> {
    wait_until(cancel, timeout, || async {
        match aws.ec2.delete_security_group().group_id(id).send().await {
            Ok(_) => Ok(Status::Done(())),
            Err(e) if errors::is_not_found(&e) => Ok(Status::Done(())),
            Err(e) if errors::code(&e) == Some("DependencyViolation") => Ok(Status::Pending("in use by network interfaces still being released".into())),
            Err(e) => Err(format!("EC2 DeleteSecurityGroup {id}: {}", errors::describe(&e))),
        }
    })
    .await
    .map_err(|e| format!("deleting security group {id}: {e}"))
}
