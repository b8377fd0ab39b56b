//! What new instances of a `dify_ec2_stack` launch from: the image, the instances' security group, the launch
//! template (a new version for each change), the instance tags and generation, and the RunInstances call.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    Filter, Instance, InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceType, IpPermission, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateSpecification, RequestLaunchTemplateData, ResourceType, SecurityGroup, UserIdGroupPair, VolumeType,
};
use base64::Engine;

use crate::aws::{ec2, security_group, tags, AwsClients, OpExt};
use crate::boot;
use crate::log;

use super::observe::{live, tag_of, Observed};
use super::{Spec, DATA_VOLUME_TAG, GENERATION_TAG, INDEX_TAG, STACK_TAG, SUBNETS_TAG};

/// What new instances launch from: the instances' security group, the launch template version, the generation
/// (image and boot configuration) they are tagged with, and their user data, rendered once per apply.
pub struct LaunchFrom {
    pub sg_id: String,
    pub lt_id: String,
    pub lt_version: i64,
    pub generation: String,
    pub user_data: String,
}

impl LaunchFrom {
    /// Whether `i` was launched from another image or boot configuration, and so is replaced.
    pub fn supersedes(&self, i: &Instance) -> bool {
        tag_of(i, GENERATION_TAG).is_some_and(|g| g != self.generation)
    }
}

/// Makes or finds what new instances launch from: the instances' security group (in the first subnet's VPC), the
/// image, and a launch template version holding the spec.
pub async fn prepare(aws: &AwsClients, spec: &Spec, current: &Observed) -> Result<LaunchFrom, String> {
    let vpc = ec2::describe_subnets(aws, vec![spec.subnet_ids[0].clone()])
        .await?
        .first()
        .and_then(|s| s.vpc_id())
        .map(str::to_string)
        .ok_or("the first subnet has no VPC")?;
    let sg_id = converge_security_group(aws, spec, current.security_group.as_ref(), &vpc).await?;
    let (ami, root_device) = resolve_ami(aws, spec).await?;
    let user_data = spec.user_data();
    let mut groups: BTreeSet<String> = spec.additional_security_group_ids.clone().unwrap_or_default();
    groups.insert(sg_id.clone());
    let inputs = TemplateInputs {
        ami: ami.clone(),
        instance_type: spec.instance_type.clone(),
        root_size: spec.root_volume_size_gb,
        profile: spec.iam_instance_profile.clone(),
        key: spec.key_name.clone(),
        groups,
        user_data: Some(user_data.clone()),
    };
    let (lt_id, lt_version, _) = converge_launch_template(aws, spec, current, &inputs, &root_device).await?;
    Ok(LaunchFrom { sg_id, lt_id, lt_version, generation: generation(&ami, &user_data), user_data })
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
            let arm = ec2::find_instance_type(aws, &spec.instance_type).await?.and_then(|t| t.processor_info).map(|p| p.supported_architectures().iter().any(|a| a.as_str() == "arm64")).unwrap_or(false);
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

/// The tags an instance carries: the stack's tags, its Name, and the ownership and index tags.
pub fn instance_tags(spec: &Spec, index: usize, generation: &str) -> BTreeMap<String, String> {
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

/// Launches the instance of `index` from `from` (RunInstances), or adopts the one an interrupted apply launched.
pub async fn run_instance(aws: &AwsClients, spec: &Spec, index: usize, from: &LaunchFrom) -> Result<String, String> {
    let (sg_id, lt, generation) = (from.sg_id.as_str(), (from.lt_id.as_str(), from.lt_version), from.generation.as_str());
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
        .user_data(base64::engine::general_purpose::STANDARD.encode(&from.user_data))
        .tag_specifications(tags::specification(ResourceType::Instance, &instance_tags))
        .tag_specifications(tags::specification(ResourceType::Volume, &volume_tags))
        .send()
        .await
        .op("EC2 RunInstances", format!("({})", spec.instance_name(index)))?;
    out.instances().first().and_then(|i| i.instance_id()).map(str::to_string).ok_or_else(|| "EC2 RunInstances returned no instance".to_string())
}
