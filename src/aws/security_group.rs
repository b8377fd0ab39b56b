//! Security group chores every resource that owns one shares: applying ingress changes, and deleting the group
//! once AWS has released the network interfaces that use it.

use std::time::Duration;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, IpPermission, ResourceType, SecurityGroup};
use tokio_util::sync::CancellationToken;

use super::wait::{wait_until, During, Status};
use super::{tags, AwsClients, OpExt};

/// The group named `name` in `vpc_id` (left by an interrupted apply, or made by this one), with `wanted_tags`:
/// found and re-tagged, or created with them.
pub async fn find_or_create(aws: &AwsClients, vpc_id: &str, name: &str, description: &str, wanted_tags: &BTreeMap<String, String>) -> Result<SecurityGroup, String> {
    let existing = aws
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .filters(Filter::builder().name("group-name").values(name).build())
        .send()
        .await
        .op("EC2 DescribeSecurityGroups", "")?
        .security_groups
        .unwrap_or_default()
        .into_iter()
        .next();
    if let Some(sg) = existing {
        tags::sync_ec2(&aws.ec2, sg.group_id().unwrap_or_default(), &tags::from_ec2(sg.tags()), wanted_tags).await?;
        return Ok(sg);
    }
    let id = aws
        .ec2
        .create_security_group()
        .group_name(name)
        .description(description)
        .vpc_id(vpc_id)
        .tag_specifications(tags::specification(ResourceType::SecurityGroup, wanted_tags))
        .send()
        .await
        .op("EC2 CreateSecurityGroup", name)?
        .group_id
        .unwrap_or_default();
    Ok(SecurityGroup::builder().group_id(id).build())
}

/// Revokes, then authorizes, ingress rules on group `id` (each call only when there is something to send).
pub async fn apply_ingress(aws: &AwsClients, id: &str, revoke: Vec<IpPermission>, authorize: Vec<IpPermission>) -> Result<(), String> {
    if !revoke.is_empty() {
        aws.ec2
            .revoke_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(revoke))
            .send()
            .await
            .op("EC2 RevokeSecurityGroupIngress", id)?;
    }
    if !authorize.is_empty() {
        aws.ec2
            .authorize_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(authorize))
            .send()
            .await
            .op("EC2 AuthorizeSecurityGroupIngress", id)?;
    }
    Ok(())
}

/// Groups (other than `id`) whose ingress or egress rules name group `id` as their source or destination.
async fn referenced_by(aws: &AwsClients, id: &str) -> Result<Vec<String>, String> {
    let by = |filter: &'static str| aws.ec2.describe_security_groups().filters(Filter::builder().name(filter).values(id).build()).send();
    let (ingress, egress) = tokio::join!(by("ip-permission.group-id"), by("egress.ip-permission.group-id"));
    let mut found = Vec::new();
    for out in [ingress, egress] {
        let out = out.op("EC2 DescribeSecurityGroups", "")?;
        for g in out.security_groups() {
            let label = format!("{} ({})", g.group_id().unwrap_or_default(), g.group_name().unwrap_or_default());
            if g.group_id() != Some(id) && !found.contains(&label) {
                found.push(label);
            }
        }
    }
    Ok(found)
}

/// Deletes group `id`, retrying `DependencyViolation` (network interfaces still being released) within `timeout`.
/// A group other groups' rules still name is refused at once with their names: AWS would refuse it too, but only
/// with a DependencyViolation that looks like interfaces being released (and the emulator deletes it anyway).
pub async fn delete(cancel: &CancellationToken, aws: &AwsClients, id: &str, timeout: Duration) -> Result<(), String> {
    match referenced_by(aws, id).await {
        Ok(others) if !others.is_empty() => {
            return Err(format!(
                "security group {id} was not deleted: the rules of {} still name it. Remove those rules (or destroy what owns those groups), then destroy again.",
                others.join(", ")
            ))
        }
        Ok(_) => {}
        Err(e) => return Err(e),
    }
    wait_until(cancel, timeout, || async {
        match aws.ec2.delete_security_group().group_id(id).send().await.op("EC2 DeleteSecurityGroup", id) {
            Ok(_) => Ok(Status::Done(())),
            Err(e) if e.is_not_found() => Ok(Status::Done(())),
            Err(e) if e.code.as_deref() == Some("DependencyViolation") => Ok(Status::Pending("in use by network interfaces still being released".into())),
            Err(e) => Err(e.into()),
        }
    })
    .await
    .during(format_args!("deleting security group {id}"))
}
