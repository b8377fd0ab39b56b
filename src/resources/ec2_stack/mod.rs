//! Resource `dify_ec2_stack`: Dify's compute — instances, launch template, security group, data-volume attachments
//! and target registrations as one resource — importable, and refusing topologies that would split Dify's data.
//!
//! This file holds the schema, validation and the typed `Spec`; the handlers delegate by job: `plan` (modify_plan),
//! `observe` (reading AWS back into state), `template` (what instances launch from), `rollout` (converging the
//! instances), `teardown` (delete) and `import`.

mod egress;
mod import;
mod observe;
mod plan;
mod prewarm;
mod rollout;
mod shared_secret;
mod snapshot;
mod teardown;
mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::aws::{secrets, tags, AwsClients};
use crate::framework::decode::decode;
use crate::framework::private::Private;
use crate::framework::resource::PlanRequest;
use crate::framework::schema::{Attribute, Block, IdentityAttribute, IdentitySchema, NestedBlock, Schema};
use crate::framework::value::{Type, Value};
use crate::framework::{timeouts, validate};
use crate::boot;
use crate::framework::{AttrPath, Ctx, Diagnostics, Resource, ResourceState};
use crate::object;

use self::observe::{groups_serving, observe, stack_state};
use self::rollout::Rollout;
use self::teardown::tear_down;

pub const TYPE_NAME: &str = "dify_ec2_stack";
const CREATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

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

/// The planned stack, decoded once per apply.
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
    /// Snapshot a data volume before a replacement moves it (default true).
    pub snapshot_before_replace: Option<bool>,
    /// How many pre-replace snapshots of each data volume to keep (default 3).
    pub snapshots_to_keep: Option<i64>,
    /// The user data the plan rendered (`modify_plan`); absent when the plan could not render it yet.
    pub rendered_user_data: Option<String>,
    /// The shared secret's ARN as the plan kept it; absent when the apply must create, restore or find it.
    pub shared_secret_arn: Option<String>,
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
    /// The user data every instance boots with: the one the plan showed, rendered here only when the plan could not.
    pub fn user_data(&self) -> String {
        self.rendered_user_data.clone().unwrap_or_else(|| boot::render(&self.dify.clone().unwrap_or_default(), self.app_port, shared_secret_of(&self.name, self.instance_count).as_deref()))
    }
    pub fn target_groups(&self) -> BTreeSet<String> {
        self.target_group_arns.clone().unwrap_or_default()
    }
}

pub struct Ec2Stack;

/// The shared application secret's name the instances are told about: only a stack of more than one instance has
/// one in use (a single instance keeps its secrets on its data volume).
pub fn shared_secret_of(name: &str, instance_count: i64) -> Option<String> {
    (instance_count > 1).then(|| boot::shared_secret_name(name))
}

fn dify_block() -> NestedBlock {
    let service = |name: &str, d: &str| {
        NestedBlock::single(
            name,
            Block::new()
                .description(d)
                .attr(Attribute::string("host").required().description("Host name.").validate(validate::not_blank()))
                .attr(Attribute::number("port").optional().description("Port."))
                .attr(Attribute::string("username").optional().description("User name (databases)."))
                .attr(Attribute::string("database").optional().description("Database name (databases)."))
                .attr(Attribute::string("plugin_database").optional().description("The plugin daemon's database on the same server (Dify's `DB_PLUGIN_DATABASE`; databases; default `dify_plugin`). It must exist, or the user must be allowed to create it."))
                .attr(Attribute::string("password_secret_arn").optional().description("Secrets Manager secret holding the password, read at boot by the instance profile: no password passes through Terraform. Without it the service is used without a password. A failed read stops the boot.").validate(validate::prefixed("arn:")))
                .attr(Attribute::string("password_secret_key").optional().description("When the secret is a JSON object (as RDS-managed secrets are: `{\"username\": …, \"password\": …}`), the key holding the password, such as `password`."))
                .attr(Attribute::bool("tls").optional().description("Use TLS (Redis): `rediss://` for the Celery broker too.")),
        )
    };
    NestedBlock::single(
        "dify",
        Block::new()
            .description("How Dify runs on the instances: rendered into cloud-init user data (see `rendered_user_data`). No secret passes through it: the instances generate Dify's secrets on first boot and keep them on the data volume, and read external service passwords from Secrets Manager. A change replaces the instances one at a time, moving the data volume after a snapshot of it (`snapshot_before_replace`; see the upgrade guide).")
            .attr(Attribute::string("version").required().description("Dify release tag whose Compose files are used, such as `1.13.3` (never the moving main branch); with `release_url`, the release its tarball holds.").validate(validate::not_blank()))
            .attr(Attribute::string("url").optional().description("Dify's public URL; sets CONSOLE_WEB_URL, CONSOLE_API_URL, APP_WEB_URL, APP_API_URL, SERVICE_API_URL and FILES_URL consistently. `http://` gets a warning: login cookies are then not Secure."))
            .attr(Attribute::string("vector_store").default(Value::string("weaviate")).description("Dify's VECTOR_STORE.").validate(validate::one_of(boot::VECTOR_STORES)))
            .attr(Attribute::number("upload_limit_mb").default(Value::int(100)).description("Largest upload in MB; sets UPLOAD_FILE_SIZE_LIMIT and NGINX_CLIENT_MAX_BODY_SIZE together.").validate(validate::int_between(1, 10240)))
            .attr(Attribute::number("alb_idle_timeout").default(Value::int(600)).description("The load balancer's idle timeout; nginx's keep-alive and proxy timeouts are set above it so the ALB never reuses a connection nginx closed.").validate(validate::int_between(1, 4000)))
            .attr(Attribute::new("env", Type::map(Type::String)).optional().description("Extra entries for Dify's `.env`. Keys the provider manages are refused, with the list of them; so are keys that name a secret (`SMTP_PASSWORD`, `S3_SECRET_KEY`, `…_API_KEY`, `…_TOKEN`, `SENTRY_DSN`), which belong in `secret_env`."))
            .attr(Attribute::new("secret_env", Type::map(Type::String)).optional().description("Secret entries for Dify's `.env`: key → Secrets Manager secret ARN. Only the ARN passes through Terraform; each instance reads the value at boot with its instance profile (which needs `secretsmanager:GetSecretValue` on it) into a 0600 file on the data volume."))
            .attr(Attribute::new("image_overrides", Type::map(Type::String)).optional().description("Pin images Dify leaves on `latest`: Compose service name → image."))
            .attr(Attribute::string("vector_store_url").optional().description("URL of an external vector store shared by all instances (weaviate, qdrant, milvus)."))
            .attr(Attribute::new("cors_allow_origins", Type::list(Type::String)).optional().description("Origins whose pages may call Dify's APIs from a browser (a frontend on another domain, such as an Amplify app): each `https://host[:port]` or `http://host[:port]`, no path, or `[\"*\"]` alone. Sets WEB_API_CORS_ALLOW_ORIGINS and CONSOLE_CORS_ALLOW_ORIGINS (joined with `,`); without it Dify's default `*` stays."))
            .attr(Attribute::string("image_registry").optional().description("Pull every image from this registry instead of Docker Hub and the others: `host[:port][/path]`, such as an ECR pull-through cache `123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/docker-hub` or a mirror `registry.internal:5000/dify`. Every service of the release's compose file (all profiles) and of `image_overrides` is moved there with its path and tag: `langgenius/dify-api:1.13.3` → `<registry>/langgenius/dify-api:1.13.3`, `postgres:15-alpine` → `<registry>/library/postgres:15-alpine`, `quay.io/coreos/etcd:v3.5.5` → `<registry>/quay.io/coreos/etcd:v3.5.5`; an image already on the registry's host is kept. ECR is logged in to with the instance profile (`ecr:GetAuthorizationToken`, and pull rights on the repositories). See the closed-network guide."))
            .attr(Attribute::string("release_url").optional().description("Fetch the release's `docker/` directory as a tarball from `s3://bucket/key` (with the instance profile: `s3:GetObject`) or `https://…`, instead of cloning the `version` tag from GitHub. The tarball holds `docker/` at its top or under one directory (as GitHub's source archives do). Needs `release_sha256`."))
            .attr(Attribute::string("release_sha256").optional().description("SHA-256 of the `release_url` tarball in hex (`sha256sum FILE`). The instance checks it before unpacking; on a mismatch the boot stops with a console line and starts nothing."))
            .attr(Attribute::string("compose_plugin_url").optional().description("Where the instance gets the Docker Compose plugin binary when the image has no working `docker compose`: `s3://bucket/key` or `https://…`, instead of its GitHub release. An image with the plugin (or a distribution package of it) downloads nothing. Needs `compose_plugin_sha256`."))
            .attr(Attribute::string("compose_plugin_sha256").optional().description("SHA-256 of the `compose_plugin_url` binary in hex, checked before it is installed."))
            .block(service("external_database", "External PostgreSQL shared by all instances."))
            .block(service("external_redis", "External Redis shared by all instances."))
            .block(NestedBlock::single(
                "s3_storage",
                Block::new()
                    .description("S3 bucket for uploaded files and the plugin daemon's installed plugins, shared by all instances (access through the instance profile).")
                    .attr(Attribute::string("bucket").required().description("Bucket name."))
                    .attr(Attribute::string("region").optional().description("Bucket region; also the plugin daemon's `PLUGIN_AWS_REGION`, so set it.")),
            )),
    )
}

/// `dify.<attr>`, `dify.<block>.<attr>` or `dify.env["KEY"]` as an attribute path.
fn dify_path(attr: &str) -> AttrPath {
    match attr.split_once("[\"") {
        Some((map, key)) => AttrPath::root("dify").attr(map).key(key.trim_end_matches("\"]")),
        None => attr.split('.').fold(AttrPath::root("dify"), |path, step| path.attr(step)),
    }
}

/// The planned state with the shared secret's ARN the apply ensured.
fn with_secret(planned: &Value, arn: Option<String>) -> Value {
    let mut planned = planned.clone();
    planned.set("shared_secret_arn", arn.map(Value::String).unwrap_or(Value::Null));
    planned
}

/// Whether a state's stack has (or should have) a shared secret: more than one instance, or one kept after a scale-in.
fn has_shared_secret(state: &Value) -> bool {
    state.get("instance_count").as_i64().is_some_and(|c| c > 1) || !state.get("shared_secret_arn").is_null()
}

fn identity(name: &str) -> Value {
    object! {"name" => Value::string(name)}
}

/// The shared services a multi-instance stack needs, and which of them the configuration lacks.
fn missing_shared_services(config: &Value) -> Vec<&'static str> {
    let dify = config.get("dify");
    let mut missing = Vec::new();
    if dify.get("external_database").is_null() {
        missing.push("external_database");
    }
    if dify.get("external_redis").is_null() {
        missing.push("external_redis");
    }
    if dify.get("vector_store_url").is_null() {
        missing.push("vector_store_url");
    }
    if dify.get("s3_storage").is_null() {
        missing.push("s3_storage");
    }
    missing
}

#[async_trait]
impl Resource for Ec2Stack {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        let list = |n: &str, d: &str| Attribute::new(n, Type::list(Type::String)).computed().description(d);
        Schema::new(
            Block::new()
                .description("Dify's compute: EC2 instances in private subnets from a launch template (IMDSv2, encrypted gp3 root, no public IP), their security group (the app port from the load balancer only), the data volume of each instance, and registration behind the load balancer. No SSH: use Session Manager.")
                .attr(Attribute::string("id").computed().use_state_for_unknown().description("The stack name."))
                .attr(Attribute::string("name").required().requires_replace().description("Stack name: instances are named after it (`name`, or `name-1`, `name-2`… when there are several) and every object carries the tag `dify:stack = name`.").validate(validate::not_blank()))
                .attr(Attribute::new("subnet_ids", Type::list(Type::String)).required().description("Private subnets; instance i goes to subnet i mod n, so two instances span two zones. The instances need a way out at boot: a subnet whose route table has no 0.0.0.0/0 route to a NAT gateway, NAT instance, internet gateway or transit gateway gets a warning at plan, naming it and the VPC endpoints a closed network would need.").validate(validate::each(validate::prefixed("subnet-"))))
                .attr(Attribute::number("instance_count").default(Value::int(1)).description("Number of instances, 1–10. More than one needs shared external services (see `dify`).").validate(validate::int_between(1, 10)))
                .attr(Attribute::string("instance_type").default(Value::string("t3.medium")).description("Instance type. Changes in place: each instance is deregistered, stopped, changed, started and registered again, one at a time; with two or more, an instance is deregistered only once every other registered target is healthy."))
                .attr(Attribute::string("ami_id").optional().computed().use_state_for_unknown().description("Image id. Default: the latest Amazon Linux 2023 for the instance type's architecture, resolved at create and then kept, so a new AMI release never replaces instances; an explicit change replaces them one at a time, moving the data volume.").validate(validate::prefixed("ami-")))
                .attr(Attribute::number("root_volume_size_gb").default(Value::int(30)).description("Size of the encrypted gp3 root volume (GiB) for new instances.").validate(validate::int_between(8, 16384)))
                .attr(Attribute::string("iam_instance_profile").optional().description("Instance profile name. It needs the AmazonSSMManagedInstanceCore policy for Session Manager (and Secrets Manager read access for external service passwords; ECR pull rights with an ECR `dify.image_registry`; `s3:GetObject` on an `s3://` `dify.release_url` or `compose_plugin_url`). `instance_policy_json` and the `dify_instance_policy` data source render the whole policy for the configuration."))
                .attr(Attribute::string("key_name").optional().description("EC2 key pair. Discouraged: use Session Manager instead of SSH; the security group opens no SSH port either way."))
                .attr(Attribute::number("app_port").default(Value::int(80)).description("The port Dify's nginx listens on; the only ingress, from `alb_security_group_id`.").validate(validate::int_between(1, 65535)))
                .attr(Attribute::string("alb_security_group_id").optional().description("The load balancer's security group (`dify_alb.security_group_id`), allowed in on `app_port`.").validate(validate::prefixed("sg-")))
                .attr(Attribute::new("additional_security_group_ids", Type::set(Type::String)).optional().description("More security groups for the instances.").validate(validate::each(validate::prefixed("sg-"))))
                .attr(Attribute::new("data_volume_ids", Type::list(Type::String)).optional().description("One `dify_persistent_volume` per instance, in order, attached as /dev/sdf and mounted at /opt/dify-data. Each must be in its instance's zone. Never deleted with an instance, never force-detached: a change stops the instance, detaches, waits, attaches and starts it.").validate(validate::each(validate::prefixed("vol-"))))
                .attr(Attribute::bool("snapshot_before_replace").default(Value::Bool(true)).description("Snapshot each data volume before a replacement moves it (default true): whenever an instance is replaced (a `dify`, `ami_id` or other boot configuration change) or an interrupted replacement is finished, the old instance is stopped, then EC2 CreateSnapshot is called on its data volume, then the volume is detached. The apply does not wait for the snapshot to complete (it is point-in-time at the call) and reports its id in a warning. The snapshot is tagged `dify:snapshot-of = <volume id>`, `dify:reason = before-replace`, `dify:stack` and `tags_all`. If the snapshot cannot be taken, the pre-warmed replacement is terminated, the old instance is started again and the apply fails before anything is detached. A change of `data_volume_ids` (changed in place) and scale-in take no snapshot. Needs `ec2:CreateSnapshot`, `ec2:CreateTags`, `ec2:DescribeSnapshots` and `ec2:DeleteSnapshot`. See the upgrade guide for rolling back to one."))
                .attr(Attribute::number("snapshots_to_keep").default(Value::int(3)).description("How many pre-replace snapshots of each data volume to keep, 1–100 (default 3). After each new one, older pre-replace snapshots of the same volume (found by the tags `dify:snapshot-of` and `dify:reason = before-replace`, owned by this account) beyond this number are deleted, oldest first. Final snapshots of `dify_persistent_volume` and its scheduled `backup` snapshots are never touched.").validate(validate::int_between(1, 100)))
                .attr(Attribute::bool("allow_data_loss").optional().description("Say that Dify's data is disposable: with no `data_volume_ids` and bundled services, the data lives on root volumes deleted with the instances, so plans warn, and a change that replaces the instances is refused unless this is true."))
                .attr(Attribute::new("target_group_arns", Type::set(Type::String)).optional().description("Target groups to register every instance with (`dify_alb.target_group_arn`). Instances are deregistered and drained before they stop. A refresh reads each group's registrations, so an instance deregistered outside Terraform is planned back.").validate(validate::each(validate::prefixed("arn:"))))
                .attr(Attribute::bool("wait_for_healthy").optional().computed().description("Wait until every target is healthy before the apply returns (default: true when target groups are set); fails at the timeout with the last reason AWS gave."))
                .attr(Attribute::new("tags", Type::map(Type::String)).optional().description("Tags for every object, merged over the provider's `default_tags`."))
                .attr(Attribute::new("tags_all", Type::map(Type::String)).computed().description("All tags, `default_tags` included."))
                .attr(list("instance_ids", "Instance ids, by index."))
                .attr(list("private_ips", "Private IP addresses, by index."))
                .attr(list("availability_zones", "Availability zone of each instance, by index."))
                .attr(Attribute::string("security_group_id").computed().description("The instances' security group."))
                .attr(Attribute::string("launch_template_id").computed().description("The launch template."))
                .attr(Attribute::number("launch_template_version").computed().description("The launch template version instances launch from; each change makes a new one."))
                .attr(Attribute::string("rendered_user_data").computed().description("The cloud-init user data the instances boot with, rendered from the `dify` block, so plans show what changes. Holds no secret."))
                .attr(Attribute::string("user_data_sha256").computed().description("SHA-256 of `rendered_user_data`."))
                .attr(Attribute::string("shared_secret_arn").computed().description("With more than one instance: the Secrets Manager secret `dify/<name>/app-secrets` (tagged `dify:stack = name`) holding Dify's application secrets (`SECRET_KEY` and the others) for every instance, so a login made through one instance is valid on the others. The provider creates it holding `{}` before any instance launches, and never reads or writes its value again: instance 0 fills it at boot (from its data volume when it has secrets there, so going from one instance to two keeps every session), the others read it. Kept while the stack exists (scaling back to one instance keeps it); destroy schedules its deletion with `shared_secret_recovery_days`. Deleted outside Terraform, it shows in the next plan and the apply restores or re-creates it (instance 0 then fills it again at its next boot). A secret of that name not tagged as this stack's is refused before anything changes."))
                .attr(Attribute::number("shared_secret_recovery_days").default(Value::int(secrets::RECOVERY_WINDOW_DAYS)).description("Days Secrets Manager keeps the shared secret restorable after destroy, 7–30 (default 7). Creating the stack again within them restores the secret with its values, so sessions survive a destroy and re-create.").validate(validate::int_between(7, 30)))
                .attr(Attribute::string("instance_policy_json").computed().description("The IAM policy (JSON) the instance profile needs for this configuration: Session Manager, the secrets it reads (and `PutSecretValue` on its shared secret only), the `s3_storage` bucket, `s3://` release objects, ECR pulls. Known at plan when its inputs are. For the role's own policy use the `dify_instance_policy` data source with the same inputs (the role must exist before the stack's instances boot); this attribute shows what the stack expects."))
                .block(dify_block())
                .block(timeouts::block(&["create", "update", "delete"])),
        )
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema { version: 0, attributes: vec![IdentityAttribute { name: "name".into(), ty: Type::String, description: "The stack name.".into(), required_for_import: true }] })
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let count = match config.get("instance_count") {
            Value::Null => Some(1),
            v => v.as_i64(),
        };
        if let (Some(count), Some(volumes)) = (count, config.get("data_volume_ids").elements()) {
            if volumes.len() as i64 != count {
                diags.error_at(AttrPath::root("data_volume_ids"), "One data volume per instance", format!("instance_count is {count} but data_volume_ids lists {}; give exactly one volume per instance, in order.", volumes.len()));
            }
        }
        if let Some(subnets) = config.get("subnet_ids").elements() {
            if subnets.is_empty() {
                diags.error_at(AttrPath::root("subnet_ids"), "No subnets", "give at least one private subnet.");
            }
        }
        for key in config.get("tags").entries().into_iter().flat_map(|m| m.keys()) {
            if let Some(problem) = tags::metadata_key_problem(key) {
                diags.error_at(AttrPath::root("tags").key(key), format!("Invalid key {key:?} in `tags`"), problem);
            }
        }
        let dify = config.get("dify");
        if !dify.is_null() && dify.is_wholly_known() {
            if let Ok(c) = decode::<boot::DifyConfig>(dify) {
                for (attr, problem) in boot::check(&c) {
                    diags.error_at(dify_path(&attr), format!("Invalid value for `dify.{attr}`"), problem);
                }
            }
        }
        if count.is_some_and(|c| c > 1) {
            let missing = missing_shared_services(config);
            if !missing.is_empty() && config.get("dify").is_wholly_known() {
                diags.error_at(
                    AttrPath::root("instance_count"),
                    "Two Dify instances would split your data",
                    format!(
                        "with instance_count > 1 and Dify's bundled PostgreSQL, Redis, vector store and local file storage, every instance runs its own independent database behind one load balancer, and users see different data on each request. Either keep instance_count = 1 (with a standby documented in the guide), or point every instance at shared services in the `dify` block: missing {}.",
                        missing.join(", ")
                    ),
                );
            }
        }
    }

    async fn modify_plan(&self, ctx: &Ctx, plan: &mut PlanRequest<'_>, diags: &mut Diagnostics) {
        plan::modify_plan(ctx, plan, diags).await
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, _config: &Value, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let timeout = timeouts::get(planned, "create", CREATE_TIMEOUT);
        // The shared secret first: a foreign secret of its name is refused before anything changes.
        let planned = match shared_secret::before_launch(aws, &spec).await {
            Ok(arn) => with_secret(planned, arn),
            Err(e) => {
                diags.error(format!("Error creating EC2 stack ({})", spec.name), e);
                return None;
            }
        };
        let planned = &planned;
        // An interrupted create left objects tagged with the stack name: resume from them.
        let current = match observe(aws, &spec.name, &[], None, None, false).await {
            Ok(o) => o,
            Err(e) => {
                diags.error(format!("Error creating EC2 stack ({})", spec.name), e);
                return None;
            }
        };
        let rollout = Rollout { aws, cancel: &ctx.cancel, timeout, spec: &spec, previous_groups: &BTreeSet::new(), warnings: Default::default() };
        let result = rollout.converge(&current).await;
        rollout.finish(planned, &Value::Null, result, &format!("creating EC2 stack ({})", spec.name), diags).await
    }

    async fn read(&self, ctx: &Ctx, state: &Value, _private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let name = state.get("name").as_str()?.to_string();
        let ids: Vec<String> = state.get("instance_ids").elements().unwrap_or_default().iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        match observe(aws, &name, &ids, state.get("security_group_id").as_str(), state.get("launch_template_id").as_str(), false).await {
            Ok(o) if o.instances.is_empty() && o.security_group.is_none() && o.launch_template_id.is_none() => None,
            Ok(o) => {
                let mut read = stack_state(state, &o, aws);
                if has_shared_secret(state) {
                    match shared_secret::live_arn(aws, &name).await {
                        Ok(arn) => read.set("shared_secret_arn", arn.map(Value::String).unwrap_or(Value::Null)),
                        Err(e) => diags.error(format!("Error reading EC2 stack ({name})"), e),
                    }
                }
                let groups: BTreeSet<String> = decode(state.get("target_group_arns")).unwrap_or_default();
                let live: Vec<String> = o.instances.values().filter_map(|i| i.instance_id().map(str::to_string)).collect();
                match groups_serving(aws, &groups, &live).await {
                    Ok(kept) if kept != groups => read.set("target_group_arns", Value::Set(kept.iter().map(Value::string).collect())),
                    Ok(_) => {}
                    Err(e) => diags.error(format!("Error reading EC2 stack ({name})"), e),
                }
                Some(ResourceState { state: read, private: Private::default(), identity: Some(identity(&name)) })
            }
            Err(e) => {
                diags.error(format!("Error reading EC2 stack ({name})"), e);
                Some(ResourceState { state: state.clone(), private: Private::default(), identity: Some(identity(&name)) })
            }
        }
    }

    async fn update(&self, ctx: &Ctx, prior: &Value, planned: &Value, _config: &Value, _private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let timeout = timeouts::get(planned, "update", UPDATE_TIMEOUT);
        let ids: Vec<String> = prior.get("instance_ids").elements().unwrap_or_default().iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        let what = format!("updating EC2 stack ({})", spec.name);
        let planned = match shared_secret::before_launch(aws, &spec).await {
            Ok(arn) => with_secret(planned, arn),
            Err(e) => {
                diags.error(format!("Error {what}"), e);
                return Some(ResourceState { state: prior.clone(), private: Private::default(), identity: Some(identity(&spec.name)) });
            }
        };
        let planned = &planned;
        let current = match observe(aws, &spec.name, &ids, prior.get("security_group_id").as_str(), prior.get("launch_template_id").as_str(), true).await {
            Ok(o) => o,
            Err(e) => {
                diags.error(format!("Error {what}"), e);
                return Some(ResourceState { state: prior.clone(), private: Private::default(), identity: Some(identity(&spec.name)) });
            }
        };
        let previous_groups: BTreeSet<String> = decode(prior.get("target_group_arns")).unwrap_or_default();
        let rollout = Rollout { aws, cancel: &ctx.cancel, timeout, spec: &spec, previous_groups: &previous_groups, warnings: Default::default() };
        let result = rollout.converge(&current).await;
        rollout.finish(planned, prior, result, &what, diags).await
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _private: &Private, diags: &mut Diagnostics) {
        let Ok(aws) = ctx.meta::<AwsClients>().map_err(|d| diags.push(d)) else { return };
        let name = prior.get("name").as_str().unwrap_or_default().to_string();
        let ids: Vec<String> = prior.get("instance_ids").elements().unwrap_or_default().iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        let timeout = timeouts::get(prior, "delete", DELETE_TIMEOUT);
        let o = match observe(aws, &name, &ids, prior.get("security_group_id").as_str(), prior.get("launch_template_id").as_str(), true).await {
            Ok(o) => o,
            Err(e) => return diags.error(format!("Error deleting EC2 stack ({name})"), e),
        };
        let groups: BTreeSet<String> = decode(prior.get("target_group_arns")).unwrap_or_default();
        if let Err(e) = tear_down(&ctx.cancel, aws, &o, &groups, timeout).await {
            return diags.error(format!("Error deleting EC2 stack ({name})"), e);
        }
        // After the instances are gone: nothing reads the shared secret any more.
        if has_shared_secret(prior) {
            let days = prior.get("shared_secret_recovery_days").as_i64().unwrap_or(secrets::RECOVERY_WINDOW_DAYS);
            if let Err(e) = shared_secret::schedule_deletion(aws, &name, days).await {
                diags.error(format!("Error deleting EC2 stack ({name}): its shared secret"), e);
            }
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, identity_value: Option<&Value>, diags: &mut Diagnostics) -> Option<ResourceState> {
        import::import(ctx, id, identity_value, diags).await
    }
}

pub fn resource() -> Arc<dyn Resource> {
    Arc::new(Ec2Stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_instances_need_every_shared_service() {
        let mut d = Diagnostics::new();
        let config = object! {"instance_count" => Value::int(2), "dify" => Value::Null, "data_volume_ids" => Value::Null, "subnet_ids" => Value::Null};
        Ec2Stack.validate(&config, &mut d);
        assert!(d.has_errors());
        assert!(d.0[0].detail.contains("external_database, external_redis, vector_store_url, s3_storage"));
    }
}
