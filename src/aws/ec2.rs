//! EC2 finders and waiters the resources share: volumes, subnets, route tables, VPC endpoints, security groups,
//! instances, their console output and the latest Amazon Linux 2023 image. A finder returns `None` for an object that does not exist; a
//! waiter polls through `wait`.

use std::time::Duration;

use aws_sdk_ec2::types::{Filter, Image, Instance, InstanceStateName, InstanceType, InstanceTypeHypervisor, InstanceTypeInfo, RouteTable, SecurityGroup, Subnet, Volume, VolumeState, VpcEndpoint};
use tokio_util::sync::CancellationToken;

use super::wait::{wait_until, During, Status, WaitError};
use super::{AwsClients, AwsError, OpExt};

/// Volume `id` unless it does not exist or is deleted.
pub async fn find_volume(aws: &AwsClients, id: &str) -> Result<Option<Volume>, AwsError> {
    match aws.ec2.describe_volumes().volume_ids(id).send().await.op("EC2 DescribeVolumes", "") {
        Ok(out) => Ok(out.volumes.unwrap_or_default().into_iter().find(|v| !matches!(v.state(), Some(VolumeState::Deleted)))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The id of a live volume (not deleted, deleting or failed) tagged `key=value`, if any.
pub async fn find_volume_by_tag(aws: &AwsClients, key: &str, value: &str) -> Result<Option<String>, AwsError> {
    let out = aws.ec2.describe_volumes().filters(Filter::builder().name(format!("tag:{key}")).values(value).build()).send().await.op("EC2 DescribeVolumes", "")?;
    Ok(out
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| !matches!(v.state(), Some(VolumeState::Deleted | VolumeState::Deleting | VolumeState::Error)))
        .and_then(|v| v.volume_id))
}

/// The volumes `ids` that exist, in one call.
pub async fn describe_volumes(aws: &AwsClients, ids: Vec<String>) -> Result<Vec<Volume>, AwsError> {
    Ok(aws.ec2.describe_volumes().set_volume_ids(Some(ids)).send().await.op("EC2 DescribeVolumes", "")?.volumes.unwrap_or_default())
}

/// Waits until volume `id` is in state `want`; "not visible yet" while AWS still answers NotFound for a volume it
/// has (eventual consistency).
pub async fn wait_volume(cancel: &CancellationToken, aws: &AwsClients, id: &str, want: VolumeState, timeout: Duration) -> Result<Volume, WaitError> {
    wait_until(cancel, timeout, || async {
        Ok(match find_volume(aws, id).await? {
            Some(v) if v.state() == Some(&want) => Status::Done(v),
            Some(v) => Status::Pending(v.state().map(|s| s.as_str().to_string()).unwrap_or_default()),
            None => Status::Pending("not visible yet".into()),
        })
    })
    .await
}

/// The subnets `ids`, in one call.
pub async fn describe_subnets(aws: &AwsClients, ids: Vec<String>) -> Result<Vec<Subnet>, AwsError> {
    Ok(aws.ec2.describe_subnets().set_subnet_ids(Some(ids)).send().await.op("EC2 DescribeSubnets", "")?.subnets.unwrap_or_default())
}

/// The route tables of VPC `vpc_id` (its main one included), in one call.
pub async fn describe_route_tables(aws: &AwsClients, vpc_id: &str) -> Result<Vec<RouteTable>, AwsError> {
    let vpc = Filter::builder().name("vpc-id").values(vpc_id).build();
    Ok(aws.ec2.describe_route_tables().filters(vpc).send().await.op("EC2 DescribeRouteTables", vpc_id)?.route_tables.unwrap_or_default())
}

/// The VPC endpoints of VPC `vpc_id`, in one call.
pub async fn describe_vpc_endpoints(aws: &AwsClients, vpc_id: &str) -> Result<Vec<VpcEndpoint>, AwsError> {
    let vpc = Filter::builder().name("vpc-id").values(vpc_id).build();
    Ok(aws.ec2.describe_vpc_endpoints().filters(vpc).send().await.op("EC2 DescribeVpcEndpoints", vpc_id)?.vpc_endpoints.unwrap_or_default())
}

/// Security group `id`, or `None` when it does not exist.
pub async fn find_security_group(aws: &AwsClients, id: &str) -> Result<Option<SecurityGroup>, AwsError> {
    Ok(find_security_groups(aws, vec![id.to_string()]).await?.into_iter().next())
}

/// The security groups `ids`, in one call; none when one of them does not exist.
pub async fn find_security_groups(aws: &AwsClients, ids: Vec<String>) -> Result<Vec<SecurityGroup>, AwsError> {
    let named = ids.join(", ");
    match aws.ec2.describe_security_groups().set_group_ids(Some(ids)).send().await.op("EC2 DescribeSecurityGroups", named) {
        Ok(out) => Ok(out.security_groups.unwrap_or_default()),
        Err(e) if e.is_not_found() => Ok(vec![]),
        Err(e) => Err(e),
    }
}

/// Waits until instance `id` is in state `want`; an instance launched a moment ago may not be visible yet.
pub async fn wait_instance(cancel: &CancellationToken, aws: &AwsClients, id: &str, want: InstanceStateName, timeout: Duration) -> Result<Instance, String> {
    wait_until(cancel, timeout, || async {
        let out = match aws.ec2.describe_instances().instance_ids(id).send().await.op("EC2 DescribeInstances", "") {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(Status::Pending("not visible yet".into())),
            Err(e) => return Err(e.into()),
        };
        let i = out.reservations().iter().flat_map(|r| r.instances()).next().cloned();
        Ok(match i {
            Some(i) if i.state().and_then(|s| s.name()) == Some(&want) => Status::Done(i),
            Some(i) => Status::Pending(i.state().and_then(|s| s.name()).map(|s| s.as_str().to_string()).unwrap_or_default()),
            None => Status::Pending("not visible yet".into()),
        })
    })
    .await
    .during(format_args!("waiting for {id} to be {}", want.as_str()))
}

/// The console output of instance `id` (EC2 GetConsoleOutput with `Latest`: the newest on Nitro instances, where
/// it still lags the machine by some seconds), decoded; empty while the instance boots and nothing was captured yet.
pub async fn console_output(aws: &AwsClients, id: &str) -> Result<String, AwsError> {
    let out = aws.ec2.get_console_output().instance_id(id).latest(true).send().await.op("EC2 GetConsoleOutput", id)?;
    Ok(decode_console(out.output().unwrap_or_default()))
}

/// Whether EC2 GetConsoleOutput shows instances of `instance_type` their console as it is written (`Latest`, which
/// AWS documents for the Nitro system, bare metal included). Xen types (t2, m4, c4...) post it only shortly after
/// boot, reboot and termination.
pub async fn console_is_live(aws: &AwsClients, instance_type: &str) -> Result<bool, AwsError> {
    Ok(find_instance_type(aws, instance_type).await?.and_then(|t| t.hypervisor().cloned()) != Some(InstanceTypeHypervisor::Xen))
}

/// What EC2 says about `instance_type` (architecture, hypervisor...); `None` for a type it does not know.
pub async fn find_instance_type(aws: &AwsClients, instance_type: &str) -> Result<Option<InstanceTypeInfo>, AwsError> {
    let out = aws.ec2.describe_instance_types().instance_types(InstanceType::from(instance_type)).send().await.op("EC2 DescribeInstanceTypes", instance_type)?;
    Ok(out.instance_types.and_then(|t| t.into_iter().next()))
}

/// Console output as EC2 sends it (base64 of the serial console's bytes, which need not be UTF-8) as text.
fn decode_console(encoded: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Terminates the instances `ids` in one call and waits until each is terminated.
pub async fn terminate_and_wait(cancel: &CancellationToken, aws: &AwsClients, ids: &[String], timeout: Duration) -> Result<(), String> {
    if ids.is_empty() {
        return Ok(());
    }
    aws.ec2.terminate_instances().set_instance_ids(Some(ids.to_vec())).send().await.op("EC2 TerminateInstances", ids.join(", "))?;
    for id in ids {
        wait_instance(cancel, aws, id, InstanceStateName::Terminated, timeout).await?;
    }
    Ok(())
}

/// The standard AL2023 image names (`al2023-ami-2023.<release>-kernel-<version>-<arch>`); excludes the minimal, ECS
/// and other derived images, which share the prefix but not this shape.
pub fn al2023_name_pattern(architecture: &str) -> String {
    format!("al2023-ami-2023.*-kernel-*-{architecture}")
}

/// The latest Amazon Linux 2023 image for `architecture` by creation date; the name (which embeds the release)
/// breaks ties.
pub async fn latest_al2023(aws: &AwsClients, architecture: &str) -> Result<Image, String> {
    let out = aws
        .ec2
        .describe_images()
        .owners("amazon")
        .filters(Filter::builder().name("name").values(al2023_name_pattern(architecture)).build())
        .filters(Filter::builder().name("architecture").values(architecture).build())
        .filters(Filter::builder().name("state").values("available").build())
        .send()
        .await
        .op("EC2 DescribeImages", "")?;
    out.images
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.name().is_some_and(|n| !n.contains("minimal")))
        .max_by(|a, b| (a.creation_date(), a.name()).cmp(&(b.creation_date(), b.name())))
        .ok_or_else(|| format!("no Amazon Linux 2023 image for {architecture} in {}", aws.region))
}

#[cfg(test)]
mod tests {
    use super::decode_console;

    #[test]
    fn console_output_is_decoded_and_empty_or_broken_output_is_empty_text() {
        assert_eq!(decode_console("ZGlmeS1ib290c3RyYXA6IERJRlktUFJFUEFSRUQgMS4xNC4wCg=="), "dify-bootstrap: DIFY-PREPARED 1.14.0\n");
        assert_eq!(decode_console(""), "");
        assert_eq!(decode_console("not base64!"), "");
        assert_eq!(decode_console("/w=="), "\u{fffd}", "bytes that are not UTF-8 do not fail the read");
    }
}
