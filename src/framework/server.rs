//! The provider server in Terraform's terms (validate, configure, plan, apply, read, import), free of any wire format.
//! The protocol layer decodes requests into these calls and encodes their results.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::diag::{AttrPath, Diagnostic, Diagnostics};
use super::plan::plan_block;
use super::private::Private;
use super::resource::{Ctx, DataSource, ListResource, ListResult, PlanRequest, Provider, Resource, ResourceState};
use super::schema::{validate_block, IdentitySchema, Schema};
use super::upgrade;
use super::value::Value;
use crate::log;

pub struct ProviderServer {
    provider: Arc<dyn Provider>,
    provider_schema: Schema,
    resources: BTreeMap<&'static str, (Arc<dyn Resource>, Schema)>,
    data_sources: BTreeMap<&'static str, (Arc<dyn DataSource>, Schema)>,
    list_resources: BTreeMap<&'static str, (Arc<dyn ListResource>, Schema)>,
    meta: RwLock<Option<Arc<dyn Any + Send + Sync>>>,
    stop: Mutex<CancellationToken>,
}

/// The outcome of planning one resource change.
pub struct Plan {
    pub planned: Value,
    pub requires_replace: Vec<AttrPath>,
    pub planned_private: Private,
}

/// Runs a read-only operation until it finishes or Terraform stops the provider (reads are safe to abandon;
/// operations that change AWS watch `ctx.cancel` themselves so they can stop at a safe point).
async fn until_stopped<T>(ctx: &Ctx, op: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        v = op => Some(v),
        _ = ctx.cancel.cancelled() => None,
    }
}

fn stopped(name: &str) -> Diagnostic {
    Diagnostic::error(format!("Reading {name} was cancelled"), "Terraform stopped the provider (StopProvider, e.g. after Ctrl-C) before the read finished.")
}

fn unknown_type(kind: &str, name: &str) -> Diagnostic {
    Diagnostic::error(format!("Unknown {kind} type {name:?}"), "this provider version does not offer it; check the spelling or upgrade the provider.")
}

impl ProviderServer {
    pub fn new(provider: Arc<dyn Provider>) -> ProviderServer {
        let resources = provider.resources().into_iter().map(|r| (r.type_name(), (r.clone(), r.schema()))).collect();
        let data_sources = provider.data_sources().into_iter().map(|d| (d.type_name(), (d.clone(), d.schema()))).collect();
        let list_resources = provider.list_resources().into_iter().map(|l| (l.type_name(), (l.clone(), l.schema()))).collect();
        ProviderServer {
            list_resources,
            provider_schema: provider.schema(),
            provider,
            resources,
            data_sources,
            meta: RwLock::new(None),
            stop: Mutex::new(CancellationToken::new()),
        }
    }

    pub fn provider_schema(&self) -> &Schema {
        &self.provider_schema
    }
    pub fn resource_schemas(&self) -> impl Iterator<Item = (&'static str, &Schema)> {
        self.resources.iter().map(|(k, (_, s))| (*k, s))
    }
    pub fn data_source_schemas(&self) -> impl Iterator<Item = (&'static str, &Schema)> {
        self.data_sources.iter().map(|(k, (_, s))| (*k, s))
    }
    pub fn list_resource_schemas(&self) -> impl Iterator<Item = (&'static str, &Schema)> {
        self.list_resources.iter().map(|(k, (_, s))| (*k, s))
    }
    pub fn list_resource_schema(&self, name: &str) -> Result<&Schema, Diagnostic> {
        self.list_resources.get(name).map(|(_, s)| s).ok_or_else(|| unknown_type("list resource", name))
    }
    pub fn identity_schemas(&self) -> impl Iterator<Item = (&'static str, IdentitySchema)> + '_ {
        self.resources.iter().filter_map(|(k, (r, _))| r.identity_schema().map(|i| (*k, i)))
    }
    pub fn resource_schema(&self, name: &str) -> Result<&Schema, Diagnostic> {
        self.resources.get(name).map(|(_, s)| s).ok_or_else(|| unknown_type("resource", name))
    }
    pub fn data_source_schema(&self, name: &str) -> Result<&Schema, Diagnostic> {
        self.data_sources.get(name).map(|(_, s)| s).ok_or_else(|| unknown_type("data source", name))
    }
    pub fn identity_schema(&self, name: &str) -> Option<IdentitySchema> {
        self.resources.get(name).and_then(|(r, _)| r.identity_schema())
    }
    fn resource(&self, name: &str) -> Result<&Arc<dyn Resource>, Diagnostic> {
        self.resources.get(name).map(|(r, _)| r).ok_or_else(|| unknown_type("resource", name))
    }

    /// A context for one operation: the configured data and the current stop token.
    pub fn ctx(&self) -> Ctx {
        let cancel = self.stop.lock().map(|t| t.clone()).unwrap_or_default();
        Ctx::new(cancel, self.meta.read().ok().and_then(|m| m.clone()))
    }

    /// `StopProvider`: cancels every operation in flight. Later operations get a fresh token, so the
    /// provider keeps serving (Terraform may still refresh or save state after a stop).
    pub fn stop(&self) {
        if let Ok(mut t) = self.stop.lock() {
            t.cancel();
            *t = CancellationToken::new();
        }
        log::info("stop requested: cancelling operations in flight", &[]);
    }

    pub fn validate_provider_config(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        validate_block(&self.provider_schema.block, config, &AttrPath::default(), &mut diags);
        self.provider.validate(config, &mut diags);
        diags
    }

    pub async fn configure(&self, config: &Value, terraform_version: &str) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let meta = self.provider.configure(config, terraform_version, &mut diags).await;
        if let Ok(mut m) = self.meta.write() {
            *m = meta;
        }
        diags
    }

    pub fn validate_resource_config(&self, name: &str, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        match self.resources.get(name) {
            Some((r, schema)) => {
                validate_block(&schema.block, config, &AttrPath::default(), &mut diags);
                r.validate(config, &mut diags);
            }
            None => diags.push(unknown_type("resource", name)),
        }
        diags
    }

    pub fn validate_data_source_config(&self, name: &str, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        match self.data_sources.get(name) {
            Some((d, schema)) => {
                validate_block(&schema.block, config, &AttrPath::default(), &mut diags);
                d.validate(config, &mut diags);
            }
            None => diags.push(unknown_type("data source", name)),
        }
        diags
    }

    pub async fn read_data_source(&self, name: &str, config: &Value) -> (Option<Value>, Diagnostics) {
        let mut diags = Diagnostics::new();
        let Some((d, schema)) = self.data_sources.get(name) else {
            return (None, unknown_type("data source", name).into());
        };
        // Terraform reads a data source during plan too; validation runs again here because
        // values that were unknown at validate time are known now.
        validate_block(&schema.block, config, &AttrPath::default(), &mut diags);
        d.validate(config, &mut diags);
        if diags.has_errors() {
            return (None, diags);
        }
        let started = Instant::now();
        let ctx = self.ctx();
        let mut read_diags = Diagnostics::new();
        let state = until_stopped(&ctx, d.read(&ctx, config, &mut read_diags)).await;
        diags.extend(read_diags);
        let state = match state {
            Some(s) => s,
            None => {
                diags.push(stopped(name));
                None
            }
        };
        log::debug("read data source", &[("tf_data_source_type", name.into()), ("duration_ms", (started.elapsed().as_millis() as u64).into())]);
        (state, diags)
    }

    pub async fn plan_resource(&self, name: &str, prior: &Value, proposed: &Value, config: &Value, prior_private: &Private) -> (Option<Plan>, Diagnostics) {
        let mut diags = Diagnostics::new();
        let (r, schema) = match self.resources.get(name) {
            Some(x) => x,
            None => return (None, unknown_type("resource", name).into()),
        };
        if proposed.is_null() {
            // Destroy: nothing to plan beyond the null state.
            return (Some(Plan { planned: Value::Null, requires_replace: vec![], planned_private: prior_private.clone() }), diags);
        }
        let base = plan_block(&schema.block, prior, proposed, config);
        let mut req = PlanRequest {
            prior,
            config,
            prior_private,
            planned: base.planned,
            requires_replace: base.requires_replace,
            planned_private: prior_private.clone(),
        };
        r.modify_plan(&self.ctx(), &mut req, &mut diags).await;
        (Some(Plan { planned: req.planned, requires_replace: req.requires_replace, planned_private: req.planned_private }), diags)
    }

    /// Applies a planned change: create (null prior), delete (null planned) or update.
    pub async fn apply_resource(&self, name: &str, prior: &Value, planned: &Value, config: &Value, private: &Private) -> (Option<ResourceState>, Diagnostics) {
        let mut diags = Diagnostics::new();
        let r = match self.resource(name) {
            Ok(r) => r,
            Err(d) => return (None, d.into()),
        };
        let ctx = self.ctx();
        let started = Instant::now();
        let (verb, result) = if planned.is_null() {
            r.delete(&ctx, prior, private, &mut diags).await;
            let result = if diags.has_errors() {
                // Keep the object in state: it still exists.
                Some(ResourceState { state: prior.clone(), private: private.clone(), identity: None })
            } else {
                Some(ResourceState { state: Value::Null, private: Private::default(), identity: None })
            };
            ("delete", result)
        } else if prior.is_null() {
            ("create", r.create(&ctx, planned, config, &mut diags).await)
        } else {
            ("update", r.update(&ctx, prior, planned, config, private, &mut diags).await)
        };
        log::debug("applied resource change", &[
            ("tf_resource_type", name.into()),
            ("operation", verb.into()),
            ("duration_ms", (started.elapsed().as_millis() as u64).into()),
            ("errors", diags.has_errors().into()),
        ]);
        (result, diags)
    }

    pub fn validate_list_resource_config(&self, name: &str, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        match self.list_resources.get(name) {
            Some((_, schema)) => validate_block(&schema.block, config, &AttrPath::default(), &mut diags),
            None => diags.push(unknown_type("list resource", name)),
        }
        diags
    }

    /// Lists existing objects for `terraform query`; read-only, so abandoned at once on StopProvider.
    pub async fn list_resource(&self, name: &str, config: &Value, include_object: bool, limit: usize) -> (Vec<ListResult>, Diagnostics) {
        let mut diags = Diagnostics::new();
        let Some((l, _)) = self.list_resources.get(name) else {
            return (vec![], unknown_type("list resource", name).into());
        };
        let ctx = self.ctx();
        let mut list_diags = Diagnostics::new();
        let found = until_stopped(&ctx, l.list(&ctx, config, include_object, limit, &mut list_diags)).await;
        diags.extend(list_diags);
        match found {
            Some(mut results) => {
                results.truncate(limit);
                (results, diags)
            }
            None => {
                diags.push(stopped(name));
                (vec![], diags)
            }
        }
    }

    pub async fn read_resource(&self, name: &str, state: &Value, private: &Private) -> (Option<ResourceState>, Diagnostics) {
        let mut diags = Diagnostics::new();
        let r = match self.resource(name) {
            Ok(r) => r,
            Err(d) => return (None, d.into()),
        };
        let ctx = self.ctx();
        let mut read_diags = Diagnostics::new();
        let result = until_stopped(&ctx, r.read(&ctx, state, private, &mut read_diags)).await;
        diags.extend(read_diags);
        match result {
            Some(result) => (result, diags),
            None => {
                diags.push(stopped(name));
                (None, diags)
            }
        }
    }

    /// `UpgradeResourceState`: a stored state of `prior_version` (raw JSON) through the resource's upgraders, then
    /// read with the current schema.
    pub fn upgrade_resource_state(&self, name: &str, prior_version: i64, raw: &[u8]) -> Result<Value, Diagnostic> {
        let (r, schema) = self.resources.get(name).ok_or_else(|| unknown_type("resource", name))?;
        upgrade::upgrade_state(name, schema.version, &schema.ty(), &r.state_upgraders(), prior_version, raw)
    }

    /// `UpgradeResourceIdentity`: a stored identity of `prior_version` read with the current identity schema.
    pub fn upgrade_resource_identity(&self, name: &str, prior_version: i64, raw: &[u8]) -> Result<Value, Diagnostic> {
        let schema = self.identity_schema(name).ok_or_else(|| Diagnostic::error(format!("{name} has no resource identity"), ""))?;
        upgrade::upgrade_identity(name, schema.version, &schema.ty(), prior_version, raw)
    }

    pub async fn import_resource(&self, name: &str, id: &str, identity: Option<&Value>) -> (Option<ResourceState>, Diagnostics) {
        let mut diags = Diagnostics::new();
        let r = match self.resource(name) {
            Ok(r) => r,
            Err(d) => return (None, d.into()),
        };
        let result = r.import(&self.ctx(), id, identity, &mut diags).await;
        (result, diags)
    }
}
