//! Logs every AWS call (service, operation, status, request id, attempts, duration) at debug level, so
//! `TF_LOG=DEBUG terraform apply` shows exactly what the provider asked AWS.

use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use crate::log;

#[derive(Debug, Clone)]
struct CallStarted {
    at: Instant,
    attempts: u32,
}

impl Storable for CallStarted {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug, Default)]
pub struct CallLogger;

impl Intercept for CallLogger {
    fn name(&self) -> &'static str {
        "dify-call-logger"
    }

    fn read_before_execution(&self, _: &BeforeSerializationInterceptorContextRef<'_>, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(CallStarted { at: Instant::now(), attempts: 0 });
        Ok(())
    }

    fn read_before_attempt(&self, _: &BeforeTransmitInterceptorContextRef<'_>, _: &RuntimeComponents, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        if let Some(started) = cfg.load::<CallStarted>().cloned() {
            cfg.interceptor_state().store_put(CallStarted { attempts: started.attempts + 1, ..started });
        }
        Ok(())
    }

    fn read_after_execution(&self, ctx: &FinalizerInterceptorContextRef<'_>, _: &RuntimeComponents, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        if !log::enabled(log::Level::Debug) {
            return Ok(());
        }
        let (service, operation) = cfg.load::<Metadata>().map(|m| (m.service().to_string(), m.name().to_string())).unwrap_or_default();
        let started = cfg.load::<CallStarted>();
        let response = ctx.response();
        let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
        let request_id = response
            .and_then(|r| r.headers().get("x-amzn-requestid").or_else(|| r.headers().get("x-amz-request-id")))
            .unwrap_or("-")
            .to_string();
        let failed = matches!(ctx.output_or_error(), Some(Err(_)));
        log::debug(
            "AWS call",
            &[
                ("aws.service", service.into()),
                ("aws.operation", operation.into()),
                ("aws.status", status.into()),
                ("aws.request_id", request_id.into()),
                ("aws.attempts", started.map(|s| s.attempts).unwrap_or(0).into()),
                ("aws.failed", failed.into()),
                ("duration_ms", started.map(|s| s.at.elapsed().as_millis() as u64).unwrap_or(0).into()),
            ],
        );
        Ok(())
    }
}
