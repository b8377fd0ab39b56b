//! terraform-provider-dify: a Terraform provider for self-hosting Dify on AWS (tested on Terraform 1.6.6 to 1.15.5).
//!
//! The modules, each importing only those listed after it (nothing imports upward):
//! - `protocol`: the wire — go-plugin handshake, mTLS gRPC, DynamicValue codecs — serving any `framework::Provider`.
//! - `provider`: the provider block (schema and typed struct), and which resources and data sources the provider has.
//! - `resources`, `data_sources`: Dify on AWS. Each resource is a file, or a folder split by job once it outgrew one
//!   (`ec2_stack/`: plan, observe, template, rollout, teardown, import; `alb/` by AWS object).
//! - `boot`: the `dify` block checked and rendered into cloud-init user data; it imports nothing of the crate.
//! - `aws`: clients and retries (`connect`, from a checked `Connection`), the typed `AwsError` (`.op("EC2 X", id)`),
//!   `wait_until`, and the finders, waiters and chores the resources share. It imports nothing of `framework`.
//! - `framework`: Terraform's semantics — values, schemas, plan helpers, timeouts, private state, state upgraders and
//!   the Provider/Resource/DataSource traits. It knows neither the wire nor AWS.
//! - `log`: hclog lines on stderr, for every layer.
//!
//! Beside them, `docs` generates the registry pages from the provider's schemas (it imports `provider`).
//!
//! docs/design.md has the same map in more detail, and a table of where things live.

pub mod aws;
pub mod boot;
pub mod data_sources;
pub mod docs;
pub mod framework;
pub mod log;
pub mod protocol;
pub mod provider;
pub mod resources;
