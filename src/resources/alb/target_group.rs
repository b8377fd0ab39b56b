//! The target group of a `dify_alb`: updated in place when AWS allows, else found or created for the new port (the
//! old one is deleted once the listeners point at the new one).

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{Matcher, ProtocolEnum, TargetGroup, TargetGroupAttribute, TargetTypeEnum};

use super::converge::{owner_tags, target_group_name, HealthCheck, Spec};
use super::observe::Observed;
use crate::aws::{elbv2, errors, AwsClients, OpExt};

fn health_check_of(tg: &TargetGroup) -> HealthCheck {
    HealthCheck {
        path: tg.health_check_path().unwrap_or_default().to_string(),
        matcher: tg.matcher().and_then(|m| m.http_code()).unwrap_or_default().to_string(),
        interval: tg.health_check_interval_seconds().unwrap_or_default() as i64,
        timeout: tg.health_check_timeout_seconds().unwrap_or_default() as i64,
        healthy_threshold: tg.healthy_threshold_count().unwrap_or_default() as i64,
        unhealthy_threshold: tg.unhealthy_threshold_count().unwrap_or_default() as i64,
    }
}

/// Keeps the current group when AWS can update it in place; otherwise finds or creates the group for the new port.
pub(super) async fn converge_target_group(aws: &AwsClients, spec: &Spec, current: Option<&Observed>) -> Result<String, String> {
    let reusable = current.and_then(|c| c.target_group.clone()).filter(|tg| tg.port() == Some(spec.target_port as i32) && tg.vpc_id() == Some(spec.vpc_id.as_str()));
    let name = target_group_name(&spec.name, spec.target_port);
    let wanted_tags = owner_tags(spec, None);
    let (tg, tags_now, attrs_now) = match reusable {
        Some(tg) => (tg, current.map(|c| c.target_group_tags.clone()), current.map(|c| c.target_group_attributes.clone()).unwrap_or_default()),
        None => {
            let found = errors::found(aws.elbv2.describe_target_groups().names(&name).send().await.op("ELBv2 DescribeTargetGroups", ""))?.and_then(|o| o.target_groups.unwrap_or_default().into_iter().next());
            match found {
                Some(tg) => (tg, None, BTreeMap::new()),
                None => {
                    let hc = &spec.health_check;
                    let out = aws
                        .elbv2
                        .create_target_group()
                        .name(&name)
                        .protocol(ProtocolEnum::Http)
                        .port(spec.target_port as i32)
                        .vpc_id(&spec.vpc_id)
                        .target_type(TargetTypeEnum::Instance)
                        .health_check_enabled(true)
                        .health_check_protocol(ProtocolEnum::Http)
                        .health_check_path(&hc.path)
                        .health_check_interval_seconds(hc.interval as i32)
                        .health_check_timeout_seconds(hc.timeout as i32)
                        .healthy_threshold_count(hc.healthy_threshold as i32)
                        .unhealthy_threshold_count(hc.unhealthy_threshold as i32)
                        .matcher(Matcher::builder().http_code(&hc.matcher).build())
                        .set_tags(Some(elbv2::to_elb(&wanted_tags)))
                        .send()
                        .await
                        .op("ELBv2 CreateTargetGroup", &name)?;
                    let tg = out.target_groups.unwrap_or_default().into_iter().next().ok_or("ELBv2 CreateTargetGroup returned no target group")?;
                    (tg, Some(wanted_tags.clone()), BTreeMap::new())
                }
            }
        }
    };
    let arn = tg.target_group_arn().unwrap_or_default().to_string();
    if health_check_of(&tg) != spec.health_check {
        let hc = &spec.health_check;
        aws.elbv2
            .modify_target_group()
            .target_group_arn(&arn)
            .health_check_path(&hc.path)
            .health_check_interval_seconds(hc.interval as i32)
            .health_check_timeout_seconds(hc.timeout as i32)
            .healthy_threshold_count(hc.healthy_threshold as i32)
            .unhealthy_threshold_count(hc.unhealthy_threshold as i32)
            .matcher(Matcher::builder().http_code(&hc.matcher).build())
            .send()
            .await
            .op("ELBv2 ModifyTargetGroup", &arn)?;
    }
    let delay = spec.deregistration_delay.to_string();
    if attrs_now.get("deregistration_delay.timeout_seconds") != Some(&delay) {
        aws.elbv2
            .modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(TargetGroupAttribute::builder().key("deregistration_delay.timeout_seconds").value(&delay).build())
            .send()
            .await
            .op("ELBv2 ModifyTargetGroupAttributes", &arn)?;
    }
    let tags_now = match tags_now {
        Some(t) => t,
        None => elbv2::tags_of(aws, &arn).await?,
    };
    elbv2::sync_elb_tags(aws, &arn, &tags_now, &wanted_tags).await?;
    Ok(arn)
}
