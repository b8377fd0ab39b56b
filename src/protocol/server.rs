//! The tfplugin6 `Provider` gRPC service: decodes each request, calls the framework's provider server, encodes the
//! result. Every failure travels back as diagnostics, never as a gRPC error, so Terraform shows it to the user.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::framework::diag::{Diagnostic, Diagnostics};
use crate::framework::private::Private;
use crate::framework::server::ProviderServer;
use crate::framework::value::{Type, Value};
use crate::log;

use super::convert::{self, decode, encode};
use super::BoxStream;
use super::proto::tfplugin6 as pb;

pub struct ProviderService {
    server: Arc<ProviderServer>,
}

impl ProviderService {
    pub fn new(server: Arc<ProviderServer>) -> ProviderService {
        ProviderService { server }
    }
}

type Rpc<T> = Result<Response<T>, Status>;

fn ok<T>(t: T) -> Rpc<T> {
    Ok(Response::new(t))
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities { plan_destroy: true, get_provider_schema_optional: true, move_resource_state: false, generate_resource_config: false }
}

fn identity_data(v: Option<&Value>, ty: Option<&Type>) -> Result<Option<pb::ResourceIdentityData>, Diagnostic> {
    match (v, ty) {
        (Some(v), Some(ty)) if !v.is_null() => Ok(Some(pb::ResourceIdentityData { identity_data: Some(encode(v, ty, "identity")?) })),
        _ => Ok(None),
    }
}

#[tonic::async_trait]
impl pb::provider_server::Provider for ProviderService {
    async fn get_metadata(&self, _: Request<pb::get_metadata::Request>) -> Rpc<pb::get_metadata::Response> {
        ok(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            data_sources: self.server.data_source_schemas().map(|(n, _)| pb::get_metadata::DataSourceMetadata { type_name: n.to_string() }).collect(),
            resources: self.server.resource_schemas().map(|(n, _)| pb::get_metadata::ResourceMetadata { type_name: n.to_string() }).collect(),
            list_resources: self.server.list_resource_schemas().map(|(n, _)| pb::get_metadata::ListResourceMetadata { type_name: n.to_string() }).collect(),
            ..Default::default()
        })
    }

    async fn get_provider_schema(&self, _: Request<pb::get_provider_schema::Request>) -> Rpc<pb::get_provider_schema::Response> {
        ok(pb::get_provider_schema::Response {
            provider: Some(convert::schema(self.server.provider_schema())),
            resource_schemas: self.server.resource_schemas().map(|(n, s)| (n.to_string(), convert::schema(s))).collect(),
            data_source_schemas: self.server.data_source_schemas().map(|(n, s)| (n.to_string(), convert::schema(s))).collect(),
            list_resource_schemas: self.server.list_resource_schemas().map(|(n, s)| (n.to_string(), convert::schema(s))).collect(),
            server_capabilities: Some(capabilities()),
            ..Default::default()
        })
    }

    async fn get_resource_identity_schemas(&self, _: Request<pb::get_resource_identity_schemas::Request>) -> Rpc<pb::get_resource_identity_schemas::Response> {
        let identity_schemas: HashMap<String, pb::ResourceIdentitySchema> =
            self.server.identity_schemas().map(|(n, i)| (n.to_string(), convert::identity_schema(&i))).collect();
        ok(pb::get_resource_identity_schemas::Response { identity_schemas, diagnostics: vec![] })
    }

    async fn validate_provider_config(&self, req: Request<pb::validate_provider_config::Request>) -> Rpc<pb::validate_provider_config::Response> {
        let req = req.into_inner();
        let ty = self.server.provider_schema().ty();
        let diags = match decode(req.config.as_ref(), &ty, "provider configuration") {
            Ok(config) => self.server.validate_provider_config(&config),
            Err(d) => d.into(),
        };
        ok(pb::validate_provider_config::Response { diagnostics: convert::diagnostics(&diags) })
    }

    async fn configure_provider(&self, req: Request<pb::configure_provider::Request>) -> Rpc<pb::configure_provider::Response> {
        let req = req.into_inner();
        let ty = self.server.provider_schema().ty();
        let diags = match decode(req.config.as_ref(), &ty, "provider configuration") {
            Ok(config) => self.server.configure(&config, &req.terraform_version).await,
            Err(d) => d.into(),
        };
        ok(pb::configure_provider::Response { diagnostics: convert::diagnostics(&diags) })
    }

    async fn validate_resource_config(&self, req: Request<pb::validate_resource_config::Request>) -> Rpc<pb::validate_resource_config::Response> {
        let req = req.into_inner();
        let diags = match self.server.resource_schema(&req.type_name) {
            Ok(schema) => match decode(req.config.as_ref(), &schema.ty(), "resource configuration") {
                Ok(config) => self.server.validate_resource_config(&req.type_name, &config),
                Err(d) => d.into(),
            },
            Err(d) => d.into(),
        };
        ok(pb::validate_resource_config::Response { diagnostics: convert::diagnostics(&diags) })
    }

    async fn validate_data_resource_config(&self, req: Request<pb::validate_data_resource_config::Request>) -> Rpc<pb::validate_data_resource_config::Response> {
        let req = req.into_inner();
        let diags = match self.server.data_source_schema(&req.type_name) {
            Ok(schema) => match decode(req.config.as_ref(), &schema.ty(), "data source configuration") {
                Ok(config) => self.server.validate_data_source_config(&req.type_name, &config),
                Err(d) => d.into(),
            },
            Err(d) => d.into(),
        };
        ok(pb::validate_data_resource_config::Response { diagnostics: convert::diagnostics(&diags) })
    }

    async fn read_data_source(&self, req: Request<pb::read_data_source::Request>) -> Rpc<pb::read_data_source::Response> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let mut state = None;
        match self.server.data_source_schema(&req.type_name) {
            Ok(schema) => {
                let ty = schema.ty();
                match decode(req.config.as_ref(), &ty, "data source configuration") {
                    Ok(config) => {
                        let (value, d) = self.server.read_data_source(&req.type_name, &config).await;
                        diags.extend(d);
                        if let Some(v) = value {
                            match encode(&v, &ty, "data source state") {
                                Ok(dv) => state = Some(dv),
                                Err(d) => diags.push(d),
                            }
                        }
                    }
                    Err(d) => diags.push(d),
                }
            }
            Err(d) => diags.push(d),
        }
        ok(pb::read_data_source::Response { state, diagnostics: convert::diagnostics(&diags), deferred: None })
    }

    async fn upgrade_resource_state(&self, req: Request<pb::upgrade_resource_state::Request>) -> Rpc<pb::upgrade_resource_state::Response> {
        let req = req.into_inner();
        let raw = req.raw_state.map(|r| r.json).unwrap_or_default();
        let result = self.server.resource_schema(&req.type_name).and_then(|schema| {
            let value = self.server.upgrade_resource_state(&req.type_name, req.version, &raw)?;
            encode(&value, &schema.ty(), "upgraded state")
        });
        let (upgraded_state, diags) = match result {
            Ok(dv) => (Some(dv), Diagnostics::new()),
            Err(d) => (None, d.into()),
        };
        ok(pb::upgrade_resource_state::Response { upgraded_state, diagnostics: convert::diagnostics(&diags) })
    }

    async fn upgrade_resource_identity(&self, req: Request<pb::upgrade_resource_identity::Request>) -> Rpc<pb::upgrade_resource_identity::Response> {
        let req = req.into_inner();
        let raw = req.raw_identity.map(|r| r.json).unwrap_or_default();
        let ty = self.server.identity_schema(&req.type_name).map(|i| i.ty());
        let result = self.server.upgrade_resource_identity(&req.type_name, req.version, &raw).and_then(|v| identity_data(Some(&v), ty.as_ref()));
        let (upgraded_identity, diags) = match result {
            Ok(i) => (i, Diagnostics::new()),
            Err(d) => (None, d.into()),
        };
        ok(pb::upgrade_resource_identity::Response { upgraded_identity, diagnostics: convert::diagnostics(&diags) })
    }

    async fn read_resource(&self, req: Request<pb::read_resource::Request>) -> Rpc<pb::read_resource::Response> {
        let req = req.into_inner();
        let mut resp = pb::read_resource::Response { new_state: req.current_state.clone(), private: req.private.clone(), ..Default::default() };
        let mut diags = Diagnostics::new();
        let identity_ty = self.server.identity_schema(&req.type_name).map(|i| i.ty());
        let step = async {
            let schema = self.server.resource_schema(&req.type_name)?;
            let ty = schema.ty();
            let state = decode(req.current_state.as_ref(), &ty, "state")?;
            let (result, d) = self.server.read_resource(&req.type_name, &state, &Private::decode(&req.private)).await;
            diags.extend(d);
            match result {
                Some(rs) => {
                    resp.new_state = Some(encode(&rs.state, &ty, "state")?);
                    resp.private = rs.private.encode();
                    resp.new_identity = identity_data(rs.identity.as_ref(), identity_ty.as_ref())?;
                }
                None if !diags.has_errors() => {
                    resp.new_state = Some(encode(&Value::Null, &ty, "state")?);
                    resp.new_identity = None;
                }
                None => {}
            }
            Ok::<(), Diagnostic>(())
        };
        if let Err(d) = step.await {
            diags.push(d);
        }
        resp.diagnostics = convert::diagnostics(&diags);
        ok(resp)
    }

    async fn plan_resource_change(&self, req: Request<pb::plan_resource_change::Request>) -> Rpc<pb::plan_resource_change::Response> {
        let req = req.into_inner();
        let mut resp = pb::plan_resource_change::Response { planned_identity: req.prior_identity.clone(), ..Default::default() };
        let mut diags = Diagnostics::new();
        let step = async {
            let schema = self.server.resource_schema(&req.type_name)?;
            let ty = schema.ty();
            let prior = decode(req.prior_state.as_ref(), &ty, "prior state")?;
            let proposed = decode(req.proposed_new_state.as_ref(), &ty, "proposed state")?;
            let config = decode(req.config.as_ref(), &ty, "configuration")?;
            let (plan, d) = self.server.plan_resource(&req.type_name, &prior, &proposed, &config, &Private::decode(&req.prior_private)).await;
            diags.extend(d);
            if let Some(plan) = plan {
                resp.planned_state = Some(encode(&plan.planned, &ty, "planned state")?);
                resp.requires_replace = plan.requires_replace.iter().map(convert::attribute_path).collect();
                resp.planned_private = plan.planned_private.encode();
            }
            Ok::<(), Diagnostic>(())
        };
        if let Err(d) = step.await {
            diags.push(d);
        }
        resp.diagnostics = convert::diagnostics(&diags);
        ok(resp)
    }

    async fn apply_resource_change(&self, req: Request<pb::apply_resource_change::Request>) -> Rpc<pb::apply_resource_change::Response> {
        let req = req.into_inner();
        let mut resp = pb::apply_resource_change::Response { new_state: req.prior_state.clone(), private: req.planned_private.clone(), ..Default::default() };
        let mut diags = Diagnostics::new();
        let identity_ty = self.server.identity_schema(&req.type_name).map(|i| i.ty());
        let step = async {
            let schema = self.server.resource_schema(&req.type_name)?;
            let ty = schema.ty();
            let prior = decode(req.prior_state.as_ref(), &ty, "prior state")?;
            let planned = decode(req.planned_state.as_ref(), &ty, "planned state")?;
            let config = decode(req.config.as_ref(), &ty, "configuration")?;
            let (result, d) = self.server.apply_resource(&req.type_name, &prior, &planned, &config, &Private::decode(&req.planned_private)).await;
            diags.extend(d);
            if let Some(rs) = result {
                resp.new_state = Some(encode(&rs.state, &ty, "new state")?);
                resp.private = rs.private.encode();
                resp.new_identity = identity_data(rs.identity.as_ref(), identity_ty.as_ref())?;
            }
            Ok::<(), Diagnostic>(())
        };
        if let Err(d) = step.await {
            diags.push(d);
        }
        resp.diagnostics = convert::diagnostics(&diags);
        ok(resp)
    }

    async fn import_resource_state(&self, req: Request<pb::import_resource_state::Request>) -> Rpc<pb::import_resource_state::Response> {
        let req = req.into_inner();
        let mut resp = pb::import_resource_state::Response::default();
        let mut diags = Diagnostics::new();
        let identity_ty = self.server.identity_schema(&req.type_name).map(|i| i.ty());
        let step = async {
            let schema = self.server.resource_schema(&req.type_name)?;
            let ty = schema.ty();
            let identity = match (req.identity.as_ref().and_then(|i| i.identity_data.as_ref()), identity_ty.as_ref()) {
                (Some(dv), Some(ity)) => Some(decode(Some(dv), ity, "identity")?),
                _ => None,
            };
            let (result, d) = self.server.import_resource(&req.type_name, &req.id, identity.as_ref()).await;
            diags.extend(d);
            if let Some(rs) = result {
                resp.imported_resources.push(pb::import_resource_state::ImportedResource {
                    type_name: req.type_name.clone(),
                    state: Some(encode(&rs.state, &ty, "imported state")?),
                    private: rs.private.encode(),
                    identity: identity_data(rs.identity.as_ref(), identity_ty.as_ref())?,
                });
            }
            Ok::<(), Diagnostic>(())
        };
        if let Err(d) = step.await {
            diags.push(d);
        }
        resp.diagnostics = convert::diagnostics(&diags);
        ok(resp)
    }

    async fn validate_list_resource_config(&self, req: Request<pb::validate_list_resource_config::Request>) -> Rpc<pb::validate_list_resource_config::Response> {
        let req = req.into_inner();
        let diags = match self.server.list_resource_schema(&req.type_name) {
            Ok(schema) => match decode(req.config.as_ref(), &schema.ty(), "list configuration") {
                Ok(config) => self.server.validate_list_resource_config(&req.type_name, &config),
                Err(d) => d.into(),
            },
            Err(d) => d.into(),
        };
        ok(pb::validate_list_resource_config::Response { diagnostics: convert::diagnostics(&diags) })
    }

    async fn list_resource(&self, req: Request<pb::list_resource::Request>) -> Rpc<BoxStream<pb::list_resource::Event>> {
        let req = req.into_inner();
        let mut events = Vec::new();
        let result = async {
            let schema = self.server.list_resource_schema(&req.type_name)?;
            let config = decode(req.config.as_ref(), &schema.ty(), "list configuration")?;
            let resource_ty = self.server.resource_schema(&req.type_name)?.ty();
            let identity_ty = self.server.identity_schema(&req.type_name).map(|i| i.ty());
            let limit = if req.limit > 0 { req.limit as usize } else { usize::MAX };
            let (found, diags) = self.server.list_resource(&req.type_name, &config, req.include_resource_object, limit).await;
            for r in found {
                let resource_object = match (&r.object, req.include_resource_object) {
                    (Some(o), true) => Some(encode(o, &resource_ty, "listed object")?),
                    _ => None,
                };
                events.push(pb::list_resource::Event {
                    identity: identity_data(Some(&r.identity), identity_ty.as_ref())?,
                    display_name: r.display_name,
                    resource_object,
                    diagnostic: vec![],
                });
            }
            if !diags.is_empty() {
                events.push(pb::list_resource::Event { diagnostic: convert::diagnostics(&diags), ..Default::default() });
            }
            Ok::<(), Diagnostic>(())
        }
        .await;
        if let Err(d) = result {
            events.push(pb::list_resource::Event { diagnostic: convert::diagnostics(&d.into()), ..Default::default() });
        }
        ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))
    }

    async fn get_functions(&self, _: Request<pb::get_functions::Request>) -> Rpc<pb::get_functions::Response> {
        ok(pb::get_functions::Response::default())
    }

    async fn stop_provider(&self, _: Request<pb::stop_provider::Request>) -> Rpc<pb::stop_provider::Response> {
        log::debug("StopProvider received", &[]);
        self.server.stop();
        ok(pb::stop_provider::Response { error: String::new() })
    }
}
