//! Terraform's semantics for provider authors: values, schemas, plans, validators, timeouts, private state and
//! the resource contracts. Knows Terraform, not AWS, and nothing of the wire protocol.

pub mod decode;
pub mod diag;
pub mod plan;
pub mod private;
pub mod resource;
pub mod schema;
pub mod server;
pub mod timeouts;
pub mod upgrade;
pub mod validate;
pub mod value;

pub use diag::{AttrPath, Diagnostic, Diagnostics};
pub use resource::{Ctx, DataSource, ListResource, ListResult, Provider, Resource, ResourceState};
pub use schema::{Attribute, Block, NestedBlock, Schema};
pub use upgrade::StateUpgrader;
pub use value::{Type, Value};
