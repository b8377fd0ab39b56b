//! Reading a `dify_ec2_stack` back from AWS: its instances by index (and the superseded side of an interrupted
//! replacement), security group and launch template, and the state built from them.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, Instance, InstanceStateName, SecurityGroup};

use crate::aws::{ec2, errors, tags, AwsClients, OpExt};
use crate::framework::value::Value;

use super::{DATA_DEVICE, INDEX_TAG, STACK_TAG};

/// What AWS holds for a stack.
#[derive(Debug, Default)]
pub struct Observed {
    pub security_group: Option<SecurityGroup>,
    pub launch_template_id: Option<String>,
    pub launch_template_version: Option<i64>,
    pub launch_template_tags: BTreeMap<String, String>,
    /// Live (not terminated) instances by index.
    pub instances: BTreeMap<usize, Instance>,
    /// Other live instances of an index: the old or new side of a replacement that was interrupted.
    pub superseded: Vec<(usize, Instance)>,
}

pub fn index_of(i: &Instance) -> Option<usize> {
    i.tags().iter().find(|t| t.key() == Some(INDEX_TAG)).and_then(|t| t.value()).and_then(|v| v.parse().ok())
}

/// An instance's security groups, as the instance and its network interfaces report them (the emulator fills only
/// the latter for instances launched with a network interface specification).
pub fn groups_of(i: &Instance) -> impl Iterator<Item = &aws_sdk_ec2::types::GroupIdentifier> {
    i.security_groups().iter().chain(i.network_interfaces().iter().flat_map(|n| n.groups()))
}

/// Device names a data volume may be attached as: the provider's, and the HCL module's `/dev/xvdf` (an imported
/// instance keeps it until its first replacement, which attaches the volume as `DATA_DEVICE`).
pub const DATA_DEVICES: &[&str] = &[DATA_DEVICE, "/dev/xvdf", "sdf", "xvdf"];

pub fn data_volume_of(i: &Instance) -> Option<String> {
    i.block_device_mappings().iter().find(|m| m.device_name().is_some_and(|d| DATA_DEVICES.contains(&d))).and_then(|m| m.ebs()).and_then(|e| e.volume_id()).map(str::to_string)
}

pub fn live(i: &Instance) -> bool {
    !matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown))
}

pub fn tag_of<'a>(i: &'a Instance, key: &str) -> Option<&'a str> {
    i.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// Reads the stack: instances by the ids in state (or, for a stack not yet in state, by its ownership tag), then its
/// security group and launch template. Instances without an index tag (imported from an older module) take their
/// position in `instance_ids`.
/// With `also_tagged` (before changing anything), instances carrying the stack's tag but missing from state — the new
/// side of an interrupted replacement — are found too, at the cost of a second call.
pub async fn observe(aws: &AwsClients, name: &str, instance_ids: &[String], security_group_id: Option<&str>, launch_template_id: Option<&str>, also_tagged: bool) -> Result<Observed, String> {
    let describe = |filter: Filter| async move {
        let out = aws.ec2.describe_instances().filters(filter).send().await.op("EC2 DescribeInstances", "")?;
        Ok::<Vec<Instance>, String>(out.reservations().iter().flat_map(|r| r.instances()).filter(|i| live(i)).cloned().collect())
    };
    let by_tag = || Filter::builder().name(format!("tag:{STACK_TAG}")).values(name).build();
    let mut found = if instance_ids.is_empty() {
        describe(by_tag()).await?
    } else {
        describe(Filter::builder().name("instance-id").set_values(Some(instance_ids.to_vec())).build()).await?
    };
    if also_tagged && !instance_ids.is_empty() && !name.is_empty() {
        for i in describe(by_tag()).await? {
            if !found.iter().any(|f| f.instance_id() == i.instance_id()) {
                found.push(i);
            }
        }
    }
    // One instance per index; when two share one (an interrupted replacement), the one in state wins, else the newest.
    let mut by_index: BTreeMap<usize, Vec<Instance>> = BTreeMap::new();
    for i in found {
        let position = instance_ids.iter().position(|id| Some(id.as_str()) == i.instance_id());
        if let Some(index) = index_of(&i).or(position) {
            by_index.entry(index).or_default().push(i);
        }
    }
    let mut instances = BTreeMap::new();
    let mut superseded = Vec::new();
    for (index, mut group) in by_index {
        group.sort_by_key(|i| (instance_ids.iter().any(|id| Some(id.as_str()) == i.instance_id()), i.launch_time().map(|t| t.secs())));
        if let Some(primary) = group.pop() {
            instances.insert(index, primary);
        }
        superseded.extend(group.into_iter().map(|i| (index, i)));
    }
    // The instances' own group: the one named after the stack, else the first group of the first instance (an
    // import from an older module). Groups are read from the instance and from its network interfaces.
    let groups: Vec<(String, String)> =
        instances.values().flat_map(groups_of).filter_map(|g| Some((g.group_id()?.to_string(), g.group_name().unwrap_or_default().to_string()))).collect();
    let sg_id = security_group_id
        .map(str::to_string)
        .or_else(|| groups.iter().find(|(_, n)| *n == format!("{name}-instances")).map(|(id, _)| id.clone()))
        .or_else(|| groups.first().map(|(id, _)| id.clone()));
    let lt_id = launch_template_id.map(str::to_string).or_else(|| {
        instances.values().flat_map(|i| i.tags()).find(|t| t.key() == Some("aws:ec2launchtemplate:id")).and_then(|t| t.value()).map(str::to_string)
    });
    let (sg, lt) = tokio::join!(
        async {
            match &sg_id {
                Some(id) => ec2::find_security_group(aws, id).await,
                None => Ok(None),
            }
        },
        async {
            let req = aws.ec2.describe_launch_templates();
            let req = match &lt_id {
                Some(id) => req.launch_template_ids(id),
                None => req.launch_template_names(format!("{name}-lt")),
            };
            match req.send().await.op("EC2 DescribeLaunchTemplates", "") {
                Ok(o) => Ok(o.launch_templates.unwrap_or_default().into_iter().next()),
                Err(e) if e.is_not_found() || e.code.as_deref() == Some("InvalidLaunchTemplateName.NotFoundException") => Ok(None),
                Err(e) => Err(e),
            }
        }
    );
    let lt = lt?;
    Ok(Observed {
        security_group: sg?,
        launch_template_id: lt.as_ref().and_then(|t| t.launch_template_id()).map(str::to_string),
        launch_template_version: lt.as_ref().and_then(|t| t.latest_version_number()),
        launch_template_tags: lt.as_ref().map(|t| tags::from_ec2(t.tags())).unwrap_or_default(),
        instances,
        superseded,
    })
}

/// The target groups of `groups` every instance of `instances` is registered with (not draining): a group an
/// instance has left (deregistered outside Terraform) or that is gone drops out, so the plan registers it again. One
/// DescribeTargetHealth per group; none without instances.
pub async fn groups_serving(aws: &AwsClients, groups: &BTreeSet<String>, instances: &[String]) -> Result<BTreeSet<String>, String> {
    if instances.is_empty() {
        return Ok(groups.clone());
    }
    let mut kept = BTreeSet::new();
    for tg in groups {
        let Some(health) = errors::found(aws.elbv2.describe_target_health().target_group_arn(tg).send().await.op("ELBv2 DescribeTargetHealth", tg))? else { continue };
        let registered = |id: &str| {
            health.target_health_descriptions().iter().any(|d| {
                d.target().and_then(|t| t.id()) == Some(id) && d.target_health().and_then(|h| h.state()) != Some(&aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum::Draining)
            })
        };
        if instances.iter().all(|i| registered(i)) {
            kept.insert(tg.clone());
        }
    }
    Ok(kept)
}

/// State from what AWS holds; `base` (plan, prior state or import skeleton) supplies configuration-only values.
pub fn stack_state(base: &Value, o: &Observed, aws: &AwsClients) -> Value {
    let list = |f: &dyn Fn(&aws_sdk_ec2::types::Instance) -> Option<String>| Value::List(o.instances.values().map(|i| f(i).map(Value::String).unwrap_or(Value::Null)).collect());
    let first = o.instances.values().next();
    let all_tags = first.map(|i| tags::from_ec2(i.tags())).unwrap_or_default();
    let visible = tags::user_visible(&all_tags);
    let visible: BTreeMap<String, String> = visible.into_iter().filter(|(k, _)| !k.starts_with("aws:")).collect();
    let (own_tags, tags_all) = super::super::state_tags(base, &visible, aws);
    let port = base.get("app_port").as_i64().unwrap_or(80) as i32;
    let alb_sg = o.security_group.as_ref().and_then(|sg| {
        sg.ip_permissions().iter().filter(|p| p.from_port() == Some(port)).flat_map(|p| p.user_id_group_pairs()).find_map(|g| g.group_id().map(str::to_string))
    });
    let volumes: Vec<Option<String>> = o.instances.values().map(data_volume_of).collect();
    let data_volume_ids = if volumes.iter().all(Option::is_none) && base.get("data_volume_ids").is_null() {
        Value::Null
    } else {
        Value::List(volumes.into_iter().map(|v| v.map(Value::String).unwrap_or(Value::Null)).collect())
    };
    let mut state = base.clone();
    if state.is_null() {
        state = Value::Object(BTreeMap::new());
    }
    let name = base.get("name").clone();
    let set = |s: &mut Value, k: &str, v: Value| s.set(k, v);
    set(&mut state, "id", name);
    set(&mut state, "instance_ids", list(&|i| i.instance_id().map(str::to_string)));
    set(&mut state, "private_ips", list(&|i| i.private_ip_address().map(str::to_string)));
    set(&mut state, "availability_zones", list(&|i| i.placement().and_then(|p| p.availability_zone()).map(str::to_string)));
    if let Some(i) = first {
        set(&mut state, "instance_type", i.instance_type().map(|t| Value::string(t.as_str())).unwrap_or(Value::Null));
        set(&mut state, "ami_id", i.image_id().map(Value::string).unwrap_or(Value::Null));
    }
    if base.get("instance_type").is_null() && first.is_none() {
        set(&mut state, "instance_type", Value::string("t3.medium"));
    }
    set(&mut state, "alb_security_group_id", alb_sg.map(Value::String).unwrap_or(Value::Null));
    set(&mut state, "data_volume_ids", data_volume_ids);
    set(&mut state, "security_group_id", o.security_group.as_ref().and_then(|g| g.group_id()).map(Value::string).unwrap_or(Value::Null));
    set(&mut state, "launch_template_id", o.launch_template_id.clone().map(Value::String).unwrap_or(Value::Null));
    set(&mut state, "launch_template_version", o.launch_template_version.map(Value::int).unwrap_or(Value::Null));
    set(&mut state, "tags", own_tags);
    set(&mut state, "tags_all", tags_all);
    if state.get("wait_for_healthy").is_null() || state.get("wait_for_healthy").is_unknown() {
        let has_groups = state.get("target_group_arns").elements().is_some_and(|e| !e.is_empty());
        set(&mut state, "wait_for_healthy", Value::Bool(has_groups));
    }
    // Anything still unknown (a failed apply) is recorded as null.
    state.without_unknowns()
}
