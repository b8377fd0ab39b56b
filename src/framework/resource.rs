//! The contracts a provider, a resource and a data source implement, and the context every operation gets.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::diag::{Diagnostic, Diagnostics};
use super::private::Private;
use super::schema::{IdentitySchema, Schema};
use super::upgrade::StateUpgrader;
use super::value::Value;

/// What every operation sees: the configured provider's data and the cancellation that `StopProvider` triggers.
#[derive(Clone)]
pub struct Ctx {
    pub cancel: CancellationToken,
    meta: Option<Arc<dyn Any + Send + Sync>>,
}

impl Ctx {
    pub fn new(cancel: CancellationToken, meta: Option<Arc<dyn Any + Send + Sync>>) -> Ctx {
        Ctx { cancel, meta }
    }

    /// The data `Provider::configure` returned, or an error telling the user why it is missing.
    pub fn meta<T: Any + Send + Sync>(&self) -> Result<&T, Diagnostic> {
        self.meta.as_deref().and_then(|m| m.downcast_ref::<T>()).ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "the provider's configuration depends on values not known yet, or configuring it failed; see the earlier errors.",
            )
        })
    }
}

/// A provider: its configuration schema, how to configure it, and what it offers.
#[async_trait]
pub trait Provider: Send + Sync {
    fn schema(&self) -> Schema;
    /// Extra checks of the provider configuration beyond its schema's validators.
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Builds the data every resource needs (clients, defaults). `None` with an error when it cannot.
    async fn configure(&self, config: &Value, terraform_version: &str, diags: &mut Diagnostics) -> Option<Arc<dyn Any + Send + Sync>>;
    fn resources(&self) -> Vec<Arc<dyn Resource>>;
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>>;
    /// Resources `terraform query` can list (protocol 6.10).
    fn list_resources(&self) -> Vec<Arc<dyn ListResource>> {
        vec![]
    }
}

/// One object a list resource found: its identity, a name for people, and optionally its full state.
pub struct ListResult {
    pub identity: Value,
    pub display_name: String,
    pub object: Option<Value>,
}

/// Finds existing objects of a managed resource type, for `terraform query` and `-generate-config-out`.
#[async_trait]
pub trait ListResource: Send + Sync {
    /// The managed resource type the results are (their identity and object use its schemas).
    fn type_name(&self) -> &'static str;
    /// The schema of the `config` block of a `list` block (the filters).
    fn schema(&self) -> Schema;
    async fn list(&self, ctx: &Ctx, config: &Value, include_object: bool, limit: usize, diags: &mut Diagnostics) -> Vec<ListResult>;
}

#[async_trait]
pub trait DataSource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Reads the data the wholly known `config` asks for; returns the full state value.
    async fn read(&self, ctx: &Ctx, config: &Value, diags: &mut Diagnostics) -> Option<Value>;
}

/// A managed object's state as an operation leaves it.
pub struct ResourceState {
    pub state: Value,
    pub private: Private,
    pub identity: Option<Value>,
}

/// A plan under construction: the schema-driven plan, which `modify_plan` may refine.
pub struct PlanRequest<'a> {
    pub prior: &'a Value,
    pub config: &'a Value,
    pub prior_private: &'a Private,
    pub planned: Value,
    pub requires_replace: Vec<super::diag::AttrPath>,
    pub planned_private: Private,
}

#[async_trait]
pub trait Resource: Send + Sync {
    fn type_name(&self) -> &'static str;
    /// The current schema; its `version` (0 unless raised with `Schema::version`) is stamped on every state written.
    fn schema(&self) -> Schema;
    /// How states of older schema versions become the current one: one upgrader from each version below the
    /// current (see framework::upgrade). None while the schema is at version 0.
    fn state_upgraders(&self) -> Vec<StateUpgrader> {
        vec![]
    }
    fn identity_schema(&self) -> Option<IdentitySchema> {
        None
    }
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Refines the schema-driven plan (cross-attribute rules, AWS lookups). Not called for destroy.
    async fn modify_plan(&self, _ctx: &Ctx, _plan: &mut PlanRequest<'_>, _diags: &mut Diagnostics) {}
    async fn create(&self, ctx: &Ctx, planned: &Value, config: &Value, diags: &mut Diagnostics) -> Option<ResourceState>;
    /// Refreshes state; `None` without errors means the object is gone and leaves state.
    async fn read(&self, ctx: &Ctx, state: &Value, private: &Private, diags: &mut Diagnostics) -> Option<ResourceState>;
    async fn update(&self, ctx: &Ctx, prior: &Value, planned: &Value, config: &Value, private: &Private, diags: &mut Diagnostics) -> Option<ResourceState>;
    async fn delete(&self, ctx: &Ctx, prior: &Value, private: &Private, diags: &mut Diagnostics);
    /// Imports by the id string of `terraform import` or, when `identity` is set, by identity.
    async fn import(&self, _ctx: &Ctx, _id: &str, _identity: Option<&Value>, diags: &mut Diagnostics) -> Option<ResourceState> {
        diags.error(format!("{} cannot be imported", self.type_name()), "");
        None
    }
}
