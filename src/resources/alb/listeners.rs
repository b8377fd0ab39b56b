//! The listeners of a `dify_alb`: HTTPS forwarding to the target group with the certificates and HTTP redirecting to
//! it when there is a certificate; HTTP forwarding when there is none.

use std::collections::BTreeSet;

use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Certificate, Listener, ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum};

use super::converge::{owner_tags, Spec};
use super::observe::{forward_target, non_default, HTTPS_PORT, HTTP_PORT};
use crate::aws::{elbv2, AwsClients, OpExt};

fn forward(tg: &str) -> Action {
    Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(tg).build()
}

fn redirect_to_https() -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Redirect)
        .redirect_config(RedirectActionConfig::builder().protocol("HTTPS").port(HTTPS_PORT.to_string()).status_code(RedirectActionStatusCodeEnum::Http301).build())
        .build()
}

fn is_redirect(l: &Listener) -> bool {
    l.default_actions().iter().any(|a| a.r#type() == Some(&ActionTypeEnum::Redirect))
}

pub(super) type KnownListeners = (Option<Listener>, Option<Listener>, BTreeSet<String>);

pub(super) async fn converge_listeners(aws: &AwsClients, spec: &Spec, lb_arn: &str, tg_arn: &str, known: Option<KnownListeners>) -> Result<(), String> {
    let (https, http, certificates) = match known {
        Some(k) => (k.0, k.1, Some(k.2)),
        None => {
            let listeners = aws
                .elbv2
                .describe_listeners()
                .load_balancer_arn(lb_arn)
                .send()
                .await
                .op("ELBv2 DescribeListeners", "")?
                .listeners
                .unwrap_or_default();
            let find = |port: i32| listeners.iter().find(|l| l.port() == Some(port)).cloned();
            (find(HTTPS_PORT), find(HTTP_PORT), None)
        }
    };

    match &spec.certificate_arn {
        Some(cert) => {
            let https_arn = match &https {
                Some(l) => {
                    let arn = l.listener_arn().unwrap_or_default().to_string();
                    let cert_now = l.certificates().first().and_then(|c| c.certificate_arn());
                    if forward_target(l).as_deref() != Some(tg_arn) || cert_now != Some(cert.as_str()) || l.ssl_policy() != Some(spec.ssl_policy.as_str()) {
                        aws.elbv2
                            .modify_listener()
                            .listener_arn(&arn)
                            .protocol(ProtocolEnum::Https)
                            .port(HTTPS_PORT)
                            .certificates(Certificate::builder().certificate_arn(cert).build())
                            .ssl_policy(&spec.ssl_policy)
                            .default_actions(forward(tg_arn))
                            .send()
                            .await
                            .op("ELBv2 ModifyListener", &arn)?;
                    }
                    arn
                }
                None => aws
                    .elbv2
                    .create_listener()
                    .load_balancer_arn(lb_arn)
                    .protocol(ProtocolEnum::Https)
                    .port(HTTPS_PORT)
                    .certificates(Certificate::builder().certificate_arn(cert).build())
                    .ssl_policy(&spec.ssl_policy)
                    .default_actions(forward(tg_arn))
                    .set_tags(Some(elbv2::to_elb(&owner_tags(spec, None))))
                    .send()
                    .await
                    .op("ELBv2 CreateListener", "HTTPS")?
                    .listeners
                    .unwrap_or_default()
                    .into_iter()
                    .next()
                    .and_then(|l| l.listener_arn)
                    .unwrap_or_default(),
            };
            // A listener created just now has no additional certificates yet.
            let certificates = if https.is_some() { certificates } else { Some(BTreeSet::new()) };
            converge_additional_certificates(aws, &https_arn, spec, certificates).await?;
            match &http {
                Some(l) if is_redirect(l) => {}
                Some(l) => {
                    let arn = l.listener_arn().unwrap_or_default();
                    aws.elbv2.modify_listener().listener_arn(arn).default_actions(redirect_to_https()).send().await.op("ELBv2 ModifyListener", arn)?;
                }
                None => {
                    create_http_listener(aws, spec, lb_arn, redirect_to_https()).await?;
                }
            }
        }
        None => {
            if let Some(l) = &https {
                let arn = l.listener_arn().unwrap_or_default();
                aws.elbv2.delete_listener().listener_arn(arn).send().await.op("ELBv2 DeleteListener", arn)?;
            }
            match &http {
                Some(l) if forward_target(l).as_deref() == Some(tg_arn) => {}
                Some(l) => {
                    let arn = l.listener_arn().unwrap_or_default();
                    aws.elbv2.modify_listener().listener_arn(arn).default_actions(forward(tg_arn)).send().await.op("ELBv2 ModifyListener", arn)?;
                }
                None => {
                    create_http_listener(aws, spec, lb_arn, forward(tg_arn)).await?;
                }
            }
        }
    }
    Ok(())
}

async fn create_http_listener(aws: &AwsClients, spec: &Spec, lb_arn: &str, action: Action) -> Result<(), String> {
    aws.elbv2
        .create_listener()
        .load_balancer_arn(lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(HTTP_PORT)
        .default_actions(action)
        .set_tags(Some(elbv2::to_elb(&owner_tags(spec, None))))
        .send()
        .await
        .op("ELBv2 CreateListener", "HTTP")?;
    Ok(())
}

async fn converge_additional_certificates(aws: &AwsClients, listener_arn: &str, spec: &Spec, known: Option<BTreeSet<String>>) -> Result<(), String> {
    let now: BTreeSet<String> = match known {
        Some(k) => k,
        None => non_default(
            aws.elbv2
                .describe_listener_certificates()
                .listener_arn(listener_arn)
                .send()
                .await
                .op("ELBv2 DescribeListenerCertificates", "")?
                .certificates
                .unwrap_or_default(),
        ),
    };
    let now: BTreeSet<String> = now.into_iter().filter(|c| Some(c) != spec.certificate_arn.as_ref()).collect();
    let wanted = spec.additional_certificate_arns.clone().unwrap_or_default();
    let add: Vec<Certificate> = wanted.difference(&now).map(|c| Certificate::builder().certificate_arn(c).build()).collect();
    let remove: Vec<Certificate> = now.difference(&wanted).map(|c| Certificate::builder().certificate_arn(c).build()).collect();
    if !add.is_empty() {
        aws.elbv2.add_listener_certificates().listener_arn(listener_arn).set_certificates(Some(add)).send().await.op("ELBv2 AddListenerCertificates", "")?;
    }
    if !remove.is_empty() {
        aws.elbv2
            .remove_listener_certificates()
            .listener_arn(listener_arn)
            .set_certificates(Some(remove))
            .send()
            .await
            .op("ELBv2 RemoveListenerCertificates", "")?;
    }
    Ok(())
}
