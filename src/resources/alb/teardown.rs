//! Tearing a `dify_alb` down: listeners, the load balancer (waited gone), the target group and the security group,
//! and what is left of one whose load balancer is already gone.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::observe::Observed;
use crate::aws::{ec2, elbv2, errors, security_group, AwsClients, OpExt};

/// Deletes listeners, the load balancer (waiting until it is gone), the target group and the security group
/// (retrying while AWS still holds its network interfaces).
pub async fn tear_down(cancel: &CancellationToken, aws: &AwsClients, o: &Observed, timeout: Duration) -> Result<(), String> {
    let arn = o.arn().to_string();
    for l in o.https.iter().chain(o.http.iter()) {
        if let Some(la) = l.listener_arn() {
            errors::found(aws.elbv2.delete_listener().listener_arn(la).send().await.op("ELBv2 DeleteListener", la))?;
        }
    }
    errors::found(aws.elbv2.delete_load_balancer().load_balancer_arn(&arn).send().await.op("ELBv2 DeleteLoadBalancer", &arn))?;
    elbv2::wait_load_balancer_deleted(cancel, aws, &arn, timeout).await?;
    let rest = Remnants {
        target_group_arn: o.target_group.as_ref().and_then(|t| t.target_group_arn()).map(str::to_string),
        // The security group belongs to the resource, whether it made it or adopted it on import.
        security_group_id: o.security_group.as_ref().and_then(|g| g.group_id()).map(str::to_string),
    };
    tear_down_remnants(cancel, aws, &rest, timeout).await?;
    Ok(())
}

/// What is left of a `dify_alb` once its load balancer is gone: the target group and security group it recorded,
/// when they still exist (a destroy interrupted between its steps, or the load balancer deleted by hand).
#[derive(Debug, Default)]
pub struct Remnants {
    pub target_group_arn: Option<String>,
    pub security_group_id: Option<String>,
}

impl Remnants {
    /// The target group and security group a `dify_alb` state recorded (whether they still exist or not).
    pub fn recorded(state: &crate::framework::value::Value) -> Remnants {
        Remnants { target_group_arn: state.get("target_group_arn").as_str().map(str::to_string), security_group_id: state.get("security_group_id").as_str().map(str::to_string) }
    }

    pub fn is_empty(&self) -> bool {
        self.target_group_arn.is_none() && self.security_group_id.is_none()
    }
}

/// Which of the recorded target group and security group still exist (one describe each, made only when the load
/// balancer is gone).
pub async fn remnants(aws: &AwsClients, recorded: &Remnants) -> Result<Remnants, String> {
    let mut found = Remnants::default();
    if let Some(tg) = &recorded.target_group_arn {
        let out = errors::found(aws.elbv2.describe_target_groups().target_group_arns(tg).send().await.op("ELBv2 DescribeTargetGroups", tg))?;
        if out.is_some_and(|o| !o.target_groups().is_empty()) {
            found.target_group_arn = Some(tg.clone());
        }
    }
    if let Some(sg) = &recorded.security_group_id {
        if ec2::find_security_group(aws, sg).await?.is_some() {
            found.security_group_id = Some(sg.clone());
        }
    }
    Ok(found)
}

/// Deletes the target group, then the security group (the last steps of a teardown); gone ones are skipped.
pub async fn tear_down_remnants(cancel: &CancellationToken, aws: &AwsClients, rest: &Remnants, timeout: Duration) -> Result<(), String> {
    if let Some(tg) = &rest.target_group_arn {
        errors::found(aws.elbv2.delete_target_group().target_group_arn(tg).send().await.op("ELBv2 DeleteTargetGroup", tg))?;
    }
    if let Some(sg) = &rest.security_group_id {
        security_group::delete(cancel, aws, sg, timeout).await?;
    }
    Ok(())
}
