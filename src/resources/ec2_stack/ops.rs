//! Reading and converging a `dify_ec2_stack`: its security group, launch template and instances (one per index),
//! data volume attachments and target registrations. Every change to an instance follows the safe order:
//! deregister and drain, stop, change, start, register, wait healthy — one instance at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ec2::types::{
    AttributeValue, Filter, Instance, InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, IpPermission,
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateSpecification, RequestLaunchTemplateData, ResourceType, SecurityGroup, UserIdGroupPair, VolumeState, VolumeType,
};
use base64::Engine;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::aws::{ec2, elbv2, errors, security_group, tags, AwsClients, OpExt};
use crate::boot;
use crate::log;

/// Tag carrying an instance's index in the stack.
pub const INDEX_TAG: &str = "dify:index";
/// Tag naming the stack an object belongs to.
pub const STACK_TAG: &str = "dify:stack";
pub const DATA_DEVICE: &str = "/dev/sdf";
/// Tag on the launch template recording the stack's `subnet_ids`, so an import by name recovers them.
pub const SUBNETS_TAG: &str = "dify:subnet-ids";

/// Tag naming the data volume an instance mounts; the boot script reads it from instance metadata.
pub const DATA_VOLUME_TAG: &str = "dify:data-volume";
/// Tag naming the image and boot configuration an instance was launched with; a different one means "replace me".
pub const GENERATION_TAG: &str = "dify:generation";

#[derive(Deserialize, Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub subnet_ids: Vec<String>,
    pub instance_count: i64,
    pub instance_type: String,
    pub ami_id: Option<String>,
    pub root_volume_size_gb: i64,
    pub iam_instance_profile: Option<String>,
    pub key_name: Option<String>,
    pub app_port: i64,
    pub alb_security_group_id: Option<String>,
    pub additional_security_group_ids: Option<BTreeSet<String>>,
    pub data_volume_ids: Option<Vec<String>>,
    pub target_group_arns: Option<BTreeSet<String>>,
    pub wait_for_healthy: Option<bool>,
    pub dify: Option<boot::DifyConfig>,
    pub tags_all: Option<BTreeMap<String, String>>,
}

impl Spec {
    pub fn instance_name(&self, index: usize) -> String {
        if self.instance_count == 1 {
            self.name.clone()
        } else {
            format!("{}-{}", self.name, index + 1)
        }
    }
    pub fn subnet(&self, index: usize) -> &str {
        &self.subnet_ids[index % self.subnet_ids.len()]
    }
    pub fn data_volume(&self, index: usize) -> Option<&str> {
        self.data_volume_ids.as_ref().and_then(|v| v.get(index)).map(String::as_str)
    }
    /// The user data every instance boots with.
    pub fn user_data(&self) -> String {
        boot::render(&self.dify.clone().unwrap_or_default(), self.app_port)
    }
    pub fn target_groups(&self) -> BTreeSet<String> {
        self.target_group_arns.clone().unwrap_or_default()
    }
}

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

fn live(i: &Instance) -> bool {
    !matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown))
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

pub struct Converged {
    pub instance_ids: Vec<String>,
    pub security_group_id: String,
    pub launch_template_id: String,
}

/// What the launch template holds; a change makes a new version.
#[derive(Debug, PartialEq)]
pub struct TemplateInputs {
    pub ami: String,
    pub instance_type: String,
    pub root_size: i64,
    pub profile: Option<String>,
    pub key: Option<String>,
    pub groups: BTreeSet<String>,
    pub user_data: Option<String>,
}

fn template_inputs(d: &aws_sdk_ec2::types::ResponseLaunchTemplateData) -> TemplateInputs {
    TemplateInputs {
        ami: d.image_id().unwrap_or_default().to_string(),
        instance_type: d.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        root_size: d.block_device_mappings().first().and_then(|b| b.ebs()).and_then(|e| e.volume_size()).unwrap_or_default() as i64,
        profile: d.iam_instance_profile().and_then(|p| p.name()).map(str::to_string),
        key: d.key_name().map(str::to_string),
        groups: d.network_interfaces().first().map(|n| n.groups().iter().cloned().collect()).unwrap_or_default(),
        user_data: d.user_data().and_then(|u| base64::engine::general_purpose::STANDARD.decode(u).ok()).and_then(|b| String::from_utf8(b).ok()),
    }
}

/// The default version's settings of a launch template (import reads them to fill the configuration-only values).
pub async fn read_template(aws: &AwsClients, id: &str) -> Result<Option<TemplateInputs>, String> {
    let out = aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(id)
        .versions("$Default")
        .send()
        .await
        .op("EC2 DescribeLaunchTemplateVersions", "")?;
    Ok(out.launch_template_versions().first().and_then(|v| v.launch_template_data()).map(template_inputs))
}

/// The image (the configured one, or the latest AL2023 for the instance type's architecture) and its root device.
async fn resolve_ami(aws: &AwsClients, spec: &Spec) -> Result<(String, String), String> {
    let image = match &spec.ami_id {
        Some(ami) => {
            let images = aws.ec2.describe_images().image_ids(ami).send().await.op("EC2 DescribeImages", ami)?;
            images.images().first().cloned().ok_or_else(|| format!("image {ami} not found in {}", aws.region))?
        }
        None => {
            let types = aws
                .ec2
                .describe_instance_types()
                .instance_types(InstanceType::from(spec.instance_type.as_str()))
                .send()
                .await
                .op("EC2 DescribeInstanceTypes", "")?;
            let arm = types.instance_types().first().and_then(|t| t.processor_info()).map(|p| p.supported_architectures().iter().any(|a| a.as_str() == "arm64")).unwrap_or(false);
            ec2::latest_al2023(aws, if arm { "arm64" } else { "x86_64" }).await?
        }
    };
    let root = image.root_device_name().unwrap_or("/dev/xvda").to_string();
    Ok((image.image_id().unwrap_or_default().to_string(), root))
}

async fn converge_security_group(aws: &AwsClients, spec: &Spec, current: Option<&SecurityGroup>, vpc_id: &str) -> Result<String, String> {
    let name = format!("{}-instances", spec.name);
    let mut wanted_tags = spec.tags_all.clone().unwrap_or_default();
    wanted_tags.insert(tags::NAME.into(), name.clone());
    wanted_tags.insert(STACK_TAG.into(), spec.name.clone());
    let sg = match current {
        Some(sg) => {
            tags::sync_ec2(&aws.ec2, sg.group_id().unwrap_or_default(), &tags::from_ec2(sg.tags()), &wanted_tags).await?;
            sg.clone()
        }
        None => security_group::find_or_create(aws, vpc_id, &name, &format!("Dify instances of {}: the app port from the load balancer only", spec.name), &wanted_tags).await?,
    };
    let id = sg.group_id().unwrap_or_default().to_string();
    let port = spec.app_port as i32;
    let have: BTreeSet<(i32, String)> = sg
        .ip_permissions()
        .iter()
        .flat_map(|p| p.user_id_group_pairs().iter().filter_map(move |g| Some((p.from_port().unwrap_or(-1), g.group_id()?.to_string()))))
        .collect();
    let stray_cidrs: Vec<IpPermission> = sg.ip_permissions().iter().filter(|p| !p.ip_ranges().is_empty() || !p.ipv6_ranges().is_empty()).cloned().collect();
    let want: BTreeSet<(i32, String)> = spec.alb_security_group_id.iter().map(|g| (port, g.clone())).collect();
    let rule = |(port, group): &(i32, String)| {
        IpPermission::builder().ip_protocol("tcp").from_port(*port).to_port(*port).user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build()).build()
    };
    let mut revoke: Vec<IpPermission> = have.difference(&want).map(rule).collect();
    revoke.extend(stray_cidrs);
    let add: Vec<IpPermission> = want.difference(&have).map(rule).collect();
    security_group::apply_ingress(aws, &id, revoke, add).await?;
    Ok(id)
}

fn template_data(inputs: &TemplateInputs, root_device: &str) -> RequestLaunchTemplateData {
    let mut data = RequestLaunchTemplateData::builder()
        .image_id(&inputs.ami)
        .instance_type(InstanceType::from(inputs.instance_type.as_str()))
        .ebs_optimized(true)
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::Required)
                .http_put_response_hop_limit(2)
                .instance_metadata_tags(aws_sdk_ec2::types::LaunchTemplateInstanceMetadataTagsState::Enabled)
                .build(),
        )
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(root_device)
                .ebs(LaunchTemplateEbsBlockDeviceRequest::builder().volume_size(inputs.root_size as i32).volume_type(VolumeType::Gp3).encrypted(true).delete_on_termination(true).build())
                .build(),
        )
        .network_interfaces(
            aws_sdk_ec2::types::LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                .device_index(0)
                .associate_public_ip_address(false)
                .set_groups(Some(inputs.groups.iter().cloned().collect()))
                .build(),
        );
    if let Some(p) = &inputs.profile {
        data = data.iam_instance_profile(LaunchTemplateIamInstanceProfileSpecificationRequest::builder().name(p).build());
    }
    if let Some(k) = &inputs.key {
        data = data.key_name(k);
    }
    if let Some(u) = &inputs.user_data {
        data = data.user_data(base64::engine::general_purpose::STANDARD.encode(u));
    }
    data.build()
}

async fn converge_launch_template(aws: &AwsClients, spec: &Spec, current: &Observed, inputs: &TemplateInputs, root_device: &str) -> Result<(String, i64, bool), String> {
    let data = template_data(inputs, root_device);
    let name = format!("{}-lt", spec.name);
    match &current.launch_template_id {
        None => {
            let mut lt_tags = spec.tags_all.clone().unwrap_or_default();
            lt_tags.insert(STACK_TAG.into(), spec.name.clone());
            lt_tags.insert(SUBNETS_TAG.into(), spec.subnet_ids.join(","));
            let out = aws
                .ec2
                .create_launch_template()
                .launch_template_name(&name)
                .launch_template_data(data)
                .tag_specifications(tags::specification(ResourceType::LaunchTemplate, &lt_tags))
                .send()
                .await
                .op("EC2 CreateLaunchTemplate", &name)?;
            let lt = out.launch_template.ok_or("EC2 CreateLaunchTemplate returned no template")?;
            Ok((lt.launch_template_id.unwrap_or_default(), lt.latest_version_number.unwrap_or(1), true))
        }
        Some(id) => {
            let subnets = spec.subnet_ids.join(",");
            if current.launch_template_tags.get(SUBNETS_TAG) != Some(&subnets) {
                aws.ec2
                    .create_tags()
                    .resources(id)
                    .tags(aws_sdk_ec2::types::Tag::builder().key(SUBNETS_TAG).value(&subnets).build())
                    .send()
                    .await
                    .op("EC2 CreateTags", id)?;
            }
            let version = current.launch_template_version.unwrap_or(1);
            let now = aws
                .ec2
                .describe_launch_template_versions()
                .launch_template_id(id)
                .versions(version.to_string())
                .send()
                .await
                .op("EC2 DescribeLaunchTemplateVersions", "")?;
            let existing = now.launch_template_versions().first().and_then(|v| v.launch_template_data()).map(template_inputs);
            if existing.as_ref() == Some(inputs) {
                return Ok((id.clone(), version, false));
            }
            let out = aws
                .ec2
                .create_launch_template_version()
                .launch_template_id(id)
                .launch_template_data(data)
                .send()
                .await
                .op("EC2 CreateLaunchTemplateVersion", id)?;
            let v = out.launch_template_version.and_then(|v| v.version_number).unwrap_or(version + 1);
            aws.ec2
                .modify_launch_template()
                .launch_template_id(id)
                .default_version(v.to_string())
                .send()
                .await
                .op("EC2 ModifyLaunchTemplate", id)?;
            Ok((id.clone(), v, true))
        }
    }
}

async fn wait_volume_available(cancel: &CancellationToken, aws: &AwsClients, volume: &str, timeout: Duration) -> Result<(), String> {
    ec2::wait_volume(cancel, aws, volume, VolumeState::Available, timeout).await.map(|_| ()).map_err(|e| format!("waiting for {volume} to be detached: {e}"))
}

async fn attach(cancel: &CancellationToken, aws: &AwsClients, instance: &str, volume: &str, timeout: Duration) -> Result<(), String> {
    aws.ec2.attach_volume().instance_id(instance).volume_id(volume).device(DATA_DEVICE).send().await.op("EC2 AttachVolume", format!("{volume} to {instance}"))?;
    ec2::wait_volume(cancel, aws, volume, VolumeState::InUse, timeout).await.map(|_| ()).map_err(|e| format!("waiting for {volume} to attach: {e}"))
}

/// The tags an instance carries: the stack's tags, its Name, and the ownership and index tags.
fn instance_tags(spec: &Spec, index: usize, generation: &str) -> BTreeMap<String, String> {
    let mut t = spec.tags_all.clone().unwrap_or_default();
    t.insert(tags::NAME.into(), spec.instance_name(index));
    t.insert(STACK_TAG.into(), spec.name.clone());
    t.insert(INDEX_TAG.into(), index.to_string());
    t.insert(GENERATION_TAG.into(), generation.to_string());
    if let Some(v) = spec.data_volume(index) {
        t.insert(DATA_VOLUME_TAG.into(), v.to_string());
    }
    t
}

/// What an instance was launched from: the image and the boot configuration.
fn generation(ami: &str, user_data: &str) -> String {
    boot::sha256_hex(&format!("{ami}\n{}", boot::sha256_hex(user_data)))[..16].to_string()
}

async fn launch(aws: &AwsClients, spec: &Spec, index: usize, sg_id: &str, lt: (&str, i64), generation: &str) -> Result<String, String> {
    // One instance per index and generation: a retried apply finds it by its tags (and AWS by the token).
    let existing = aws
        .ec2
        .describe_instances()
        .filters(Filter::builder().name(format!("tag:{STACK_TAG}")).values(&spec.name).build())
        .filters(Filter::builder().name(format!("tag:{INDEX_TAG}")).values(index.to_string()).build())
        .filters(Filter::builder().name(format!("tag:{GENERATION_TAG}")).values(generation).build())
        .send()
        .await
        .op("EC2 DescribeInstances", "")?;
    if let Some(i) = existing.reservations().iter().flat_map(|r| r.instances()).find(|i| live(i)) {
        let id = i.instance_id().unwrap_or_default().to_string();
        log::info("adopting the instance an interrupted apply launched", &[("instance_id", id.clone().into()), ("index", (index as u64).into())]);
        return Ok(id);
    }
    let token = tags::client_token(&[&spec.name, &index.to_string(), lt.0, &lt.1.to_string()]);
    let instance_tags = instance_tags(spec, index, generation);
    let mut volume_tags = spec.tags_all.clone().unwrap_or_default();
    volume_tags.insert(tags::NAME.into(), format!("{}-root", spec.instance_name(index)));
    volume_tags.insert(STACK_TAG.into(), spec.name.clone());
    let mut groups = vec![sg_id.to_string()];
    groups.extend(spec.additional_security_group_ids.clone().unwrap_or_default());
    // The emulator ignores a template's network interfaces and metadata options, so they are passed here too
    // (AWS accepts both).
    let out = aws
        .ec2
        .run_instances()
        .launch_template(LaunchTemplateSpecification::builder().launch_template_id(lt.0).version(lt.1.to_string()).build())
        .min_count(1)
        .max_count(1)
        .client_token(&token)
        .network_interfaces(
            InstanceNetworkInterfaceSpecification::builder().device_index(0).subnet_id(spec.subnet(index)).associate_public_ip_address(false).set_groups(Some(groups)).build(),
        )
        .metadata_options(
            InstanceMetadataOptionsRequest::builder()
                .http_tokens(aws_sdk_ec2::types::HttpTokensState::Required)
                .http_put_response_hop_limit(2)
                .instance_metadata_tags(aws_sdk_ec2::types::InstanceMetadataTagsState::Enabled)
                .build(),
        )
        .user_data(base64::engine::general_purpose::STANDARD.encode(spec.user_data()))
        .tag_specifications(tags::specification(ResourceType::Instance, &instance_tags))
        .tag_specifications(tags::specification(ResourceType::Volume, &volume_tags))
        .send()
        .await
        .op("EC2 RunInstances", format!("({})", spec.instance_name(index)))?;
    out.instances().first().and_then(|i| i.instance_id()).map(str::to_string).ok_or_else(|| "EC2 RunInstances returned no instance".to_string())
}

/// Stops an instance safely: deregistered and drained first.
async fn stop(cancel: &CancellationToken, aws: &AwsClients, spec: &Spec, id: &str, timeout: Duration) -> Result<(), String> {
    elbv2::deregister_and_drain(cancel, aws, &spec.target_groups(), id, timeout).await?;
    aws.ec2.stop_instances().instance_ids(id).send().await.op("EC2 StopInstances", id)?;
    ec2::wait_instance(cancel, aws, id, InstanceStateName::Stopped, timeout).await?;
    Ok(())
}

async fn start(cancel: &CancellationToken, aws: &AwsClients, id: &str, timeout: Duration) -> Result<(), String> {
    aws.ec2.start_instances().instance_ids(id).send().await.op("EC2 StartInstances", id)?;
    ec2::wait_instance(cancel, aws, id, InstanceStateName::Running, timeout).await?;
    Ok(())
}

pub async fn converge(cancel: &CancellationToken, aws: &AwsClients, spec: &Spec, current: &Observed, previous_groups: &BTreeSet<String>, timeout: Duration) -> Result<Converged, String> {
    let vpc = ec2::describe_subnets(aws, vec![spec.subnet_ids[0].clone()])
        .await?
        .first()
        .and_then(|s| s.vpc_id())
        .map(str::to_string)
        .ok_or("the first subnet has no VPC")?;
    let sg_id = converge_security_group(aws, spec, current.security_group.as_ref(), &vpc).await?;
    let (ami, root_device) = resolve_ami(aws, spec).await?;
    let mut groups: BTreeSet<String> = spec.additional_security_group_ids.clone().unwrap_or_default();
    groups.insert(sg_id.clone());
    let inputs = TemplateInputs {
        ami: ami.clone(),
        instance_type: spec.instance_type.clone(),
        root_size: spec.root_volume_size_gb,
        profile: spec.iam_instance_profile.clone(),
        key: spec.key_name.clone(),
        groups,
        user_data: Some(spec.user_data()),
    };
    let (lt_id, lt_version, _) = converge_launch_template(aws, spec, current, &inputs, &root_device).await?;
    let groups_now = spec.target_groups();
    let count = spec.instance_count as usize;
    let wanted_generation = generation(&ami, &spec.user_data());

    // An interrupted replacement left two instances for an index: keep the one of the wanted generation, retire
    // the other (drained, stopped, its data volume released, terminated).
    let mut instances = current.instances.clone();
    for (index, other) in &current.superseded {
        let keep_other = tag_of(other, GENERATION_TAG) == Some(wanted_generation.as_str()) && instances.get(index).is_some_and(|p| tag_of(p, GENERATION_TAG) != Some(wanted_generation.as_str()));
        let retired = if keep_other { instances.insert(*index, other.clone()) } else { Some(other.clone()) };
        if let Some(r) = retired {
            log::info("finishing an interrupted replacement", &[("retiring", r.instance_id().unwrap_or_default().into()), ("index", (*index as u64).into())]);
            retire(cancel, aws, previous_groups, &r, timeout).await?;
        }
    }

    // Scale in: highest indexes first, deregistered before they are terminated; their data volumes survive.
    for (index, i) in instances.iter().rev().filter(|(index, _)| **index >= count) {
        let id = i.instance_id().unwrap_or_default().to_string();
        log::info("scaling in", &[("instance_id", id.clone().into()), ("index", (*index as u64).into())]);
        elbv2::deregister_and_drain(cancel, aws, previous_groups, &id, timeout).await?;
        ec2::terminate_and_wait(cancel, aws, std::slice::from_ref(&id), timeout).await?;
    }

    let mut ids = Vec::with_capacity(count);
    for index in 0..count {
        let id = match instances.get(&index) {
            Some(i) if tag_of(i, GENERATION_TAG).is_some_and(|g| g != wanted_generation) => {
                replace_instance(cancel, aws, spec, index, i, &sg_id, (&lt_id, lt_version), &wanted_generation, previous_groups, timeout).await?
            }
            Some(i) => {
                let id = i.instance_id().unwrap_or_default().to_string();
                // Instances imported from an older module get the ownership, index and generation tags here: they
                // keep running as they are until the boot configuration or the image next changes.
                tags::sync_ec2(&aws.ec2, &id, &tags::from_ec2(i.tags()), &instance_tags(spec, index, &wanted_generation)).await?;
                // A security group recreated after a deletion outside Terraform: put the instance back into it.
                if !groups_of(i).any(|g| g.group_id() == Some(sg_id.as_str())) {
                    let mut groups = vec![sg_id.clone()];
                    groups.extend(spec.additional_security_group_ids.clone().unwrap_or_default());
                    aws.ec2
                        .modify_instance_attribute()
                        .instance_id(&id)
                        .set_groups(Some(groups))
                        .send()
                        .await
                        .op("EC2 ModifyInstanceAttribute", format!("(groups) {id}"))?;
                }
                let type_now = i.instance_type().map(|t| t.as_str()).unwrap_or_default();
                let volume_now = data_volume_of(i);
                let wanted_volume = spec.data_volume(index).map(str::to_string);
                let retype = type_now != spec.instance_type;
                let reattach = volume_now != wanted_volume;
                if retype || reattach {
                    // One instance at a time: deregister and drain, stop, change, start, register, wait healthy.
                    stop(cancel, aws, spec, &id, timeout).await?;
                    if retype {
                        aws.ec2
                            .modify_instance_attribute()
                            .instance_id(&id)
                            .instance_type(AttributeValue::builder().value(&spec.instance_type).build())
                            .send()
                            .await
                            .op("EC2 ModifyInstanceAttribute", &id)?;
                    }
                    if reattach {
                        if let Some(old) = &volume_now {
                            aws.ec2
                                .detach_volume()
                                .instance_id(&id)
                                .volume_id(old)
                                .device(DATA_DEVICE)
                                .send()
                                .await
                                .op("EC2 DetachVolume", format!("{old} from {id}"))?;
                            wait_volume_available(cancel, aws, old, timeout).await?;
                        }
                        if let Some(new) = &wanted_volume {
                            attach(cancel, aws, &id, new, timeout).await?;
                        }
                    }
                    start(cancel, aws, &id, timeout).await?;
                    elbv2::register_targets(aws, &groups_now, &id, spec.app_port).await?;
                    if spec.wait_for_healthy.unwrap_or(false) {
                        elbv2::wait_targets_healthy(cancel, aws, &groups_now, std::slice::from_ref(&id), timeout).await?;
                    }
                } else if let Some(state @ (InstanceStateName::Pending | InstanceStateName::Stopping | InstanceStateName::Stopped)) = i.state().and_then(|s| s.name()) {
                    // Left stopped (or starting) by a change that was interrupted: stack changes deregister before
                    // they stop, so start it and register it again.
                    log::info("starting an instance an interrupted change left stopped", &[("instance_id", id.clone().into()), ("state", state.as_str().into())]);
                    if *state != InstanceStateName::Pending {
                        ec2::wait_instance(cancel, aws, &id, InstanceStateName::Stopped, timeout).await?;
                        start(cancel, aws, &id, timeout).await?;
                    } else {
                        ec2::wait_instance(cancel, aws, &id, InstanceStateName::Running, timeout).await?;
                    }
                    elbv2::register_targets(aws, &groups_now, &id, spec.app_port).await?;
                } else {
                    let new_groups: BTreeSet<String> = groups_now.difference(previous_groups).cloned().collect();
                    elbv2::register_targets(aws, &new_groups, &id, spec.app_port).await?;
                    let gone: BTreeSet<String> = previous_groups.difference(&groups_now).cloned().collect();
                    elbv2::deregister_and_drain(cancel, aws, &gone, &id, timeout).await?;
                }
                id
            }
            None => {
                let id = launch(aws, spec, index, &sg_id, (&lt_id, lt_version), &wanted_generation).await?;
                let running = ec2::wait_instance(cancel, aws, &id, InstanceStateName::Running, timeout).await?;
                if let Some(volume) = spec.data_volume(index) {
                    if data_volume_of(&running).as_deref() != Some(volume) {
                        attach(cancel, aws, &id, volume, timeout).await?;
                    }
                }
                elbv2::register_targets(aws, &groups_now, &id, spec.app_port).await?;
                id
            }
        };
        ids.push(id);
    }
    if spec.wait_for_healthy.unwrap_or(false) {
        elbv2::wait_targets_healthy(cancel, aws, &groups_now, &ids, timeout).await?;
    }
    Ok(Converged { instance_ids: ids, security_group_id: sg_id, launch_template_id: lt_id })
}

fn tag_of<'a>(i: &'a Instance, key: &str) -> Option<&'a str> {
    i.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// Takes an instance out of service for good: drained, stopped, its data volume detached (waited `available`), then
/// terminated. The volume is never force-detached, and detached only from a stopped instance.
async fn retire(cancel: &CancellationToken, aws: &AwsClients, groups: &BTreeSet<String>, i: &Instance, timeout: Duration) -> Result<(), String> {
    let id = i.instance_id().unwrap_or_default().to_string();
    elbv2::deregister_and_drain(cancel, aws, groups, &id, timeout).await?;
    release_volume(cancel, aws, i, timeout).await?;
    ec2::terminate_and_wait(cancel, aws, std::slice::from_ref(&id), timeout).await?;
    Ok(())
}

/// Stops `i` (already deregistered) and detaches its data volume, waiting until the volume is `available`.
async fn release_volume(cancel: &CancellationToken, aws: &AwsClients, i: &Instance, timeout: Duration) -> Result<Option<String>, String> {
    let id = i.instance_id().unwrap_or_default().to_string();
    if !matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Stopped)) {
        aws.ec2.stop_instances().instance_ids(&id).send().await.op("EC2 StopInstances", &id)?;
        ec2::wait_instance(cancel, aws, &id, InstanceStateName::Stopped, timeout).await?;
    }
    let Some(volume) = data_volume_of(i) else { return Ok(None) };
    aws.ec2
        .detach_volume()
        .instance_id(&id)
        .volume_id(&volume)
        .device(DATA_DEVICE)
        .send()
        .await
        .op("EC2 DetachVolume", format!("{volume} from {id}"))?;
    wait_volume_available(cancel, aws, &volume, timeout).await?;
    Ok(Some(volume))
}

/// Replaces instance `old` at `index` with one of the wanted generation without ever exposing the mounted data
/// volume to two machines: deregister and drain → stop old → detach (wait `available`) → launch new in the same
/// subnet → attach → register → wait healthy → terminate old. If a step after the detach fails, the new instance is
/// terminated, the volume goes back to the old one, which is started and registered again, and the error names the
/// step. A rerun after an interruption finishes from what the tags show (see `converge`).
#[allow(clippy::too_many_arguments)]
async fn replace_instance(
    cancel: &CancellationToken,
    aws: &AwsClients,
    spec: &Spec,
    index: usize,
    old: &Instance,
    sg_id: &str,
    lt: (&str, i64),
    generation: &str,
    previous_groups: &BTreeSet<String>,
    timeout: Duration,
) -> Result<String, String> {
    let old_id = old.instance_id().unwrap_or_default().to_string();
    let groups = spec.target_groups();
    log::info("replacing instance", &[("instance_id", old_id.clone().into()), ("index", (index as u64).into())]);
    elbv2::deregister_and_drain(cancel, aws, previous_groups, &old_id, timeout).await?;
    let released = release_volume(cancel, aws, old, timeout).await?;
    // The replacement gets the volume the configuration names (normally the one just released).
    let volume = spec.data_volume(index).map(str::to_string).or_else(|| released.clone());

    let mut new_id = None;
    let forward = async {
        let id = launch(aws, spec, index, sg_id, lt, generation).await.map_err(|e| format!("launching the replacement: {e}"))?;
        new_id = Some(id.clone());
        ec2::wait_instance(cancel, aws, &id, InstanceStateName::Running, timeout).await.map_err(|e| format!("starting the replacement: {e}"))?;
        if let Some(v) = &volume {
            attach(cancel, aws, &id, v, timeout).await.map_err(|e| format!("attaching {v} to the replacement: {e}"))?;
        }
        elbv2::register_targets(aws, &groups, &id, spec.app_port).await.map_err(|e| format!("registering the replacement: {e}"))?;
        if spec.wait_for_healthy.unwrap_or(false) {
            elbv2::wait_targets_healthy(cancel, aws, &groups, std::slice::from_ref(&id), timeout).await.map_err(|e| format!("waiting for the replacement to be healthy: {e}"))?;
        }
        Ok::<String, String>(id)
    }
    .await;
    match forward {
        Ok(id) => {
            ec2::terminate_and_wait(cancel, aws, std::slice::from_ref(&old_id), timeout).await?;
            Ok(id)
        }
        Err(step) => {
            // Roll back: the old instance gets its volume back and serves again.
            if let Some(id) = &new_id {
                let _ = elbv2::deregister_and_drain(cancel, aws, &groups, id, timeout).await;
                let _ = aws.ec2.terminate_instances().instance_ids(id).send().await;
                let _ = ec2::wait_instance(cancel, aws, id, InstanceStateName::Terminated, timeout).await;
            }
            let mut restored = Vec::new();
            if let Some(v) = &released {
                let _ = wait_volume_available(cancel, aws, v, timeout).await;
                if let Err(e) = attach(cancel, aws, &old_id, v, timeout).await {
                    restored.push(format!("re-attaching {v} failed too: {e}"));
                }
            }
            if let Err(e) = start(cancel, aws, &old_id, timeout).await {
                restored.push(format!("restarting {old_id} failed too: {e}"));
            }
            if let Err(e) = elbv2::register_targets(aws, previous_groups, &old_id, spec.app_port).await {
                restored.push(format!("registering {old_id} again failed too: {e}"));
            }
            let outcome = if restored.is_empty() { format!("rolled back: {old_id} has its data volume and serves again") } else { restored.join("; ") };
            Err(format!("replacing instance {} ({old_id}) failed at {step}; {outcome}", index + 1))
        }
    }
}

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
