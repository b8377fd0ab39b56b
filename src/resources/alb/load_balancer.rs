//! The load balancer of a `dify_alb`: adopted (when an interrupted apply made it) or created, waited active, and its
//! subnets, security group, attributes and tags brought to the spec.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{LoadBalancerAttribute, LoadBalancerSchemeEnum, LoadBalancerTypeEnum};
use tokio_util::sync::CancellationToken;

use super::converge::{owner_tags, Spec};
use super::observe::Observed;
use crate::aws::elbv2::{self, Lookup};
use crate::aws::{tags, AwsClients, OpExt};
use crate::log;

pub(super) async fn converge_load_balancer(cancel: &CancellationToken, aws: &AwsClients, spec: &Spec, current: Option<&Observed>, sg_id: &str, timeout: Duration) -> Result<String, String> {
    let wanted_tags = owner_tags(spec, None);
    let (lb, tags_now) = match current {
        Some(c) => (c.lb.clone(), c.lb_tags.clone()),
        None => match elbv2::find_load_balancer(aws, Lookup::Name(&spec.name)).await? {
            Some(lb) => {
                let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
                let t = elbv2::tags_of(aws, &arn).await?;
                if t.get(tags::OWNER_ALB) != Some(&spec.name) {
                    return Err(format!(
                        "a load balancer named {} already exists ({arn}) and this configuration did not create it; adopt it with `terraform import dify_alb.<name> {arn}` or choose another name",
                        spec.name
                    ));
                }
                log::info("adopting the load balancer an interrupted apply created", &[("arn", arn.into())]);
                (lb, t)
            }
            None => {
                let out = aws
                    .elbv2
                    .create_load_balancer()
                    .name(&spec.name)
                    .set_subnets(Some(spec.subnet_ids.iter().cloned().collect()))
                    .security_groups(sg_id)
                    .scheme(if spec.internal { LoadBalancerSchemeEnum::Internal } else { LoadBalancerSchemeEnum::InternetFacing })
                    .r#type(LoadBalancerTypeEnum::Application)
                    .set_tags(Some(elbv2::to_elb(&wanted_tags)))
                    .send()
                    .await
                    .op("ELBv2 CreateLoadBalancer", &spec.name)?;
                let lb = out.load_balancers.unwrap_or_default().into_iter().next().ok_or("ELBv2 CreateLoadBalancer returned no load balancer")?;
                (lb, wanted_tags.clone())
            }
        },
    };
    let arn = lb.load_balancer_arn().unwrap_or_default().to_string();

    elbv2::wait_load_balancer_active(cancel, aws, &arn, timeout).await?;

    let subnets_now: BTreeSet<String> = lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
    if subnets_now != spec.subnet_ids {
        aws.elbv2
            .set_subnets()
            .load_balancer_arn(&arn)
            .set_subnets(Some(spec.subnet_ids.iter().cloned().collect()))
            .send()
            .await
            .op("ELBv2 SetSubnets", &arn)?;
    }
    if !lb.security_groups().iter().any(|g| g == sg_id) {
        aws.elbv2
            .set_security_groups()
            .load_balancer_arn(&arn)
            .security_groups(sg_id)
            .send()
            .await
            .op("ELBv2 SetSecurityGroups", &arn)?;
    }

    let mut wanted_attrs = BTreeMap::from([
        ("idle_timeout.timeout_seconds".to_string(), spec.idle_timeout.to_string()),
        ("deletion_protection.enabled".to_string(), spec.deletion_protection.to_string()),
        ("routing.http.drop_invalid_header_fields.enabled".to_string(), spec.drop_invalid_header_fields.to_string()),
        ("access_logs.s3.enabled".to_string(), spec.access_logs.is_some().to_string()),
    ]);
    if let Some(logs) = &spec.access_logs {
        wanted_attrs.insert("access_logs.s3.bucket".into(), logs.bucket.clone());
        wanted_attrs.insert("access_logs.s3.prefix".into(), logs.prefix.clone().unwrap_or_default());
    }
    let attrs_now = match current {
        Some(c) => c.lb_attributes.clone(),
        None => BTreeMap::new(),
    };
    let changed: Vec<LoadBalancerAttribute> =
        wanted_attrs.iter().filter(|(k, v)| attrs_now.get(*k) != Some(*v)).map(|(k, v)| LoadBalancerAttribute::builder().key(k).value(v).build()).collect();
    if !changed.is_empty() {
        aws.elbv2
            .modify_load_balancer_attributes()
            .load_balancer_arn(&arn)
            .set_attributes(Some(changed))
            .send()
            .await
            .op("ELBv2 ModifyLoadBalancerAttributes", &arn)?;
    }
    elbv2::sync_elb_tags(aws, &arn, &tags_now, &wanted_tags).await?;
    Ok(arn)
}
