//! The benchmark floor: a provider with exactly this provider's schemas that does nothing (no AWS, no waits). Served
//! under the same address, it lets the overhead benchmark (`tests/integration/bench_calls.rs`) measure what Terraform
//! itself costs for the same graph, so the provider's own overhead is the ratio of the two. Not shipped; built by
//! `make bench` only (`--features bench-floor`).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use terraform_provider_dify::framework::private::Private;
use terraform_provider_dify::framework::resource::{DataSource, Provider, Resource, ResourceState};
use terraform_provider_dify::framework::schema::Schema;
use terraform_provider_dify::framework::server::ProviderServer;
use terraform_provider_dify::framework::value::{Type, Value};
use terraform_provider_dify::framework::{Ctx, Diagnostics};
use terraform_provider_dify::protocol::serve::{serve, Mode};
use terraform_provider_dify::provider::DifyProvider;

/// A made-up id of the shape the consuming attribute's validator expects.
fn placeholder(path: &str) -> String {
    match path {
        "dify_persistent_volume" => "vol-0f100f100f100f100".into(),
        "dify_alb" | "arn" | "target_group_arn" | "https_listener_arn" | "http_listener_arn" => "arn:aws:elasticloadbalancing:floor".into(),
        "security_group_id" => "sg-0f100f100f100f100".into(),
        "ami_id" => "ami-0f100f100f100f100".into(),
        "snapshot_id" => "snap-0f100f100f100f100".into(),
        other => format!("floor-{other}"),
    }
}

/// Replaces unknown values by placeholders of the right type.
fn fill(v: &Value, ty: &Type, path: &str) -> Value {
    match (v, ty) {
        (Value::Unknown(_), Type::String) => Value::string(placeholder(path)),
        (Value::Unknown(_), Type::Number) => Value::int(1),
        (Value::Unknown(_), Type::Bool) => Value::Bool(false),
        (Value::Unknown(_), Type::List(_)) => Value::List(vec![Value::string(format!("floor-{path}"))]),
        (Value::Unknown(_), Type::Set(_)) => Value::Set(vec![]),
        (Value::Unknown(_), Type::Map(_)) => Value::Map(Default::default()),
        (Value::Unknown(_), _) => Value::Null,
        (Value::Object(m), Type::Object(attrs)) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    // A resource's own id takes the resource's id shape.
                    let p = if k == "id" { path } else { k.as_str() };
                    (k.clone(), attrs.get(k).map(|t| fill(x, t, p)).unwrap_or_else(|| x.clone()))
                })
                .collect(),
        ),
        (other, _) => other.clone(),
    }
}

struct FloorResource {
    name: &'static str,
    schema: Schema,
}

#[async_trait]
impl Resource for FloorResource {
    fn type_name(&self) -> &'static str {
        self.name
    }
    fn schema(&self) -> Schema {
        self.schema.clone()
    }
    async fn create(&self, _: &Ctx, planned: &Value, _: &Value, _: &mut Diagnostics) -> Option<ResourceState> {
        Some(ResourceState { state: fill(planned, &self.schema.ty(), self.name), private: Private::default(), identity: None })
    }
    async fn read(&self, _: &Ctx, state: &Value, private: &Private, _: &mut Diagnostics) -> Option<ResourceState> {
        Some(ResourceState { state: state.clone(), private: private.clone(), identity: None })
    }
    async fn update(&self, _: &Ctx, _: &Value, planned: &Value, _: &Value, _: &Private, _: &mut Diagnostics) -> Option<ResourceState> {
        Some(ResourceState { state: fill(planned, &self.schema.ty(), self.name), private: Private::default(), identity: None })
    }
    async fn delete(&self, _: &Ctx, _: &Value, _: &Private, _: &mut Diagnostics) {}
}

struct FloorData {
    name: &'static str,
    schema: Schema,
}

#[async_trait]
impl DataSource for FloorData {
    fn type_name(&self) -> &'static str {
        self.name
    }
    fn schema(&self) -> Schema {
        self.schema.clone()
    }
    async fn read(&self, _: &Ctx, config: &Value, _: &mut Diagnostics) -> Option<Value> {
        let mut v = fill(&config.without_unknowns(), &self.schema.ty(), self.name);
        if self.name == "dify_network" {
            let subnet = |id: &str, az: &str, public: bool| {
                terraform_provider_dify::object! {"id" => Value::string(id), "name" => Value::string(id), "availability_zone" => Value::string(az), "cidr_block" => Value::string("10.0.0.0/24"), "public" => Value::Bool(public)}
            };
            v.set("vpc_id", Value::string("vpc-floor"));
            v.set("id", Value::string("vpc-floor"));
            v.set("vpc_cidr", Value::string("10.0.0.0/16"));
            v.set("public_subnet_ids", Value::List(vec![Value::string("subnet-pa"), Value::string("subnet-pc")]));
            v.set("private_subnet_ids", Value::List(vec![Value::string("subnet-qa"), Value::string("subnet-qc")]));
            v.set("subnets", Value::List(vec![subnet("subnet-pa", "a", true), subnet("subnet-pc", "c", true), subnet("subnet-qa", "a", false), subnet("subnet-qc", "c", false)]));
        }
        Some(v)
    }
}

struct Floor;

#[async_trait]
impl Provider for Floor {
    fn schema(&self) -> Schema {
        DifyProvider.schema()
    }
    async fn configure(&self, _: &Value, _: &str, _: &mut Diagnostics) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(Arc::new(()))
    }
    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        DifyProvider.resources().into_iter().map(|r| Arc::new(FloorResource { name: r.type_name(), schema: r.schema() }) as Arc<dyn Resource>).collect()
    }
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        DifyProvider.data_sources().into_iter().map(|d| Arc::new(FloorData { name: d.type_name(), schema: d.schema() }) as Arc<dyn DataSource>).collect()
    }
}

fn main() {
    if !terraform_provider_dify::protocol::handshake::started_by_terraform() {
        eprintln!("the benchmark floor provider: started by Terraform only");
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let server = Arc::new(ProviderServer::new(Arc::new(Floor)));
    if let Err(e) = runtime.block_on(serve(server, Mode::Plugin)) {
        eprintln!("floor provider: {e}");
        std::process::exit(1);
    }
}
