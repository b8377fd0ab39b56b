//! The IAM policy a stack's instance profile needs, as JSON: one renderer behind both `dify_ec2_stack`'s
//! `instance_policy_json` and the `dify_instance_policy` data source, so the two never disagree.

use std::collections::BTreeSet;

use serde_json::{json, Value as Json};

use super::{self as boot, DifyConfig};

/// What the instances reach with their profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyInputs {
    pub stack_name: String,
    pub region: String,
    /// More than one instance: the shared application secret is read and (by instance 0) written.
    pub shared_secret: bool,
    /// `dify.s3_storage.bucket`: uploads and the plugin daemon's plugins.
    pub bucket: Option<String>,
    /// Secrets the instances read at boot (external service passwords, `secret_env`).
    pub secret_arns: BTreeSet<String>,
    /// `s3://bucket/key` objects the instances fetch (`release_url`, `compose_plugin_url`); other URLs are ignored.
    pub object_urls: BTreeSet<String>,
    /// `dify.image_registry`; only an ECR registry adds statements.
    pub image_registry: Option<String>,
}

impl PolicyInputs {
    /// The inputs a stack's `dify` block (or its absence) gives.
    pub fn of_stack(stack_name: &str, region: &str, instance_count: i64, c: &DifyConfig) -> PolicyInputs {
        let passwords = [c.external_database.as_ref().and_then(|d| d.password_secret_arn.clone()), c.external_redis.as_ref().and_then(|r| r.password_secret_arn.clone())];
        PolicyInputs {
            stack_name: stack_name.to_string(),
            region: region.to_string(),
            shared_secret: instance_count > 1,
            bucket: c.s3_storage.as_ref().map(|s| s.bucket.clone()),
            secret_arns: passwords.into_iter().flatten().chain(c.secret_env.iter().flat_map(|m| m.values().cloned())).collect(),
            object_urls: [c.release_url.clone(), c.compose_plugin_url.clone()].into_iter().flatten().collect(),
            image_registry: c.image_registry.clone(),
        }
    }
}

/// The actions AWS's managed policy AmazonSSMManagedInstanceCore grants: Session Manager and the SSM agent.
const SSM_CORE_ACTIONS: &[&str] = &[
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
    "ssm:DescribeAssociation",
    "ssm:DescribeDocument",
    "ssm:GetDeployablePatchSnapshotForInstance",
    "ssm:GetDocument",
    "ssm:GetManifest",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:ListAssociations",
    "ssm:ListInstanceAssociations",
    "ssm:PutComplianceItems",
    "ssm:PutConfigurePackageResult",
    "ssm:PutInventory",
    "ssm:UpdateAssociationStatus",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
];

/// `(account, region, repository path)` of an ECR registry host (`<account>.dkr.ecr.<region>.amazonaws.com[/path]`).
fn ecr_registry(registry: &str) -> Option<(&str, &str, &str)> {
    let (host, path) = registry.split_once('/').unwrap_or((registry, ""));
    let (account, rest) = host.split_once(".dkr.ecr.")?;
    let region = rest.split('.').next().filter(|r| !r.is_empty())?;
    (account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())).then_some((account, region, path.trim_matches('/')))
}

fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Json {
    let resource = if resources.len() == 1 { json!(resources[0]) } else { json!(resources) };
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource})
}

/// The policy document, compact and deterministic: statements in a fixed order, every list sorted. `part` is the
/// region's ARN partition (`aws::partition`).
pub fn render(p: &PolicyInputs, part: &str) -> String {
    let mut statements = vec![statement("SessionManager", SSM_CORE_ACTIONS, vec!["*".into()])];
    let shared = format!("arn:{part}:secretsmanager:{}:*:secret:{}-*", p.region, boot::shared_secret_name(&p.stack_name));
    let mut readable: BTreeSet<String> = p.secret_arns.clone();
    if p.shared_secret {
        readable.insert(shared.clone());
    }
    if !readable.is_empty() {
        statements.push(statement("ReadSecrets", &["secretsmanager:GetSecretValue"], readable.into_iter().collect()));
    }
    if p.shared_secret {
        statements.push(statement("WriteSharedSecret", &["secretsmanager:PutSecretValue"], vec![shared]));
    }
    if let Some(bucket) = &p.bucket {
        statements.push(statement("FilesList", &["s3:ListBucket"], vec![format!("arn:{part}:s3:::{bucket}")]));
        statements.push(statement("FilesReadWrite", &["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], vec![format!("arn:{part}:s3:::{bucket}/*")]));
    }
    let objects: Vec<String> = p.object_urls.iter().filter_map(|u| u.strip_prefix("s3://")).map(|o| format!("arn:{part}:s3:::{o}")).collect::<BTreeSet<_>>().into_iter().collect();
    if !objects.is_empty() {
        statements.push(statement("ReleaseObjects", &["s3:GetObject"], objects));
    }
    if let Some((account, region, path)) = p.image_registry.as_deref().and_then(ecr_registry) {
        let repos = if path.is_empty() { "*".to_string() } else { format!("{path}/*") };
        statements.push(statement("EcrLogin", &["ecr:GetAuthorizationToken"], vec!["*".into()]));
        // A pull-through cache creates the repository and imports the image on the first pull.
        statements.push(statement(
            "EcrPull",
            &["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:BatchImportUpstreamImage", "ecr:CreateRepository", "ecr:GetDownloadUrlForLayer"],
            vec![format!("arn:{part}:ecr:{region}:{account}:repository/{repos}")],
        ));
    }
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(p: &PolicyInputs) -> Json {
        doc_in(p, "aws")
    }

    fn doc_in(p: &PolicyInputs, partition: &str) -> Json {
        serde_json::from_str(&render(p, partition)).unwrap()
    }

    fn sids(d: &Json) -> Vec<&str> {
        d["Statement"].as_array().unwrap().iter().map(|s| s["Sid"].as_str().unwrap()).collect()
    }

    #[test]
    fn a_single_instance_with_bundled_services_needs_session_manager_only() {
        let d = doc(&PolicyInputs::of_stack("dify", "us-east-1", 1, &DifyConfig::default()));
        assert_eq!(d["Version"], "2012-10-17");
        assert_eq!(sids(&d), vec!["SessionManager"]);
        assert!(d["Statement"][0]["Action"].as_array().unwrap().iter().any(|a| a == "ssmmessages:OpenDataChannel"));
    }

    #[test]
    fn two_instances_read_every_secret_and_write_only_the_shared_one() {
        let c = DifyConfig {
            external_database: Some(boot::ExternalDatabase { host: "db".into(), password_secret_arn: Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf".into()), ..Default::default() }),
            secret_env: Some([("SMTP_PASSWORD".to_string(), "arn:aws:secretsmanager:us-east-1:123456789012:secret:smtp-XyZ".to_string())].into()),
            s3_storage: Some(boot::S3Storage { bucket: "dify-files".into(), region: Some("us-east-1".into()) }),
            ..Default::default()
        };
        let d = doc(&PolicyInputs::of_stack("dify-prd", "us-east-1", 2, &c));
        assert_eq!(sids(&d), vec!["SessionManager", "ReadSecrets", "WriteSharedSecret", "FilesList", "FilesReadWrite"]);
        let shared = "arn:aws:secretsmanager:us-east-1:*:secret:dify/dify-prd/app-secrets-*";
        assert_eq!(d["Statement"][1]["Resource"], json!([shared, "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf", "arn:aws:secretsmanager:us-east-1:123456789012:secret:smtp-XyZ"]), "sorted");
        assert_eq!(d["Statement"][2]["Action"], json!(["secretsmanager:PutSecretValue"]));
        assert_eq!(d["Statement"][2]["Resource"], shared, "writes only the shared secret");
        assert_eq!(d["Statement"][3]["Resource"], "arn:aws:s3:::dify-files");
        assert_eq!(d["Statement"][4]["Resource"], "arn:aws:s3:::dify-files/*");
    }

    #[test]
    fn release_objects_and_an_ecr_registry_are_granted_and_other_registries_are_not() {
        let mut c = DifyConfig {
            release_url: Some("s3://artifacts/dify-1.13.3.tar.gz".into()),
            compose_plugin_url: Some("https://example.com/docker-compose".into()),
            image_registry: Some("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/docker-hub".into()),
            ..Default::default()
        };
        let d = doc_in(&PolicyInputs::of_stack("dify", "cn-north-1", 1, &c), "aws-cn");
        assert_eq!(sids(&d), vec!["SessionManager", "ReleaseObjects", "EcrLogin", "EcrPull"]);
        assert_eq!(d["Statement"][1]["Resource"], "arn:aws-cn:s3:::artifacts/dify-1.13.3.tar.gz");
        assert_eq!(d["Statement"][3]["Resource"], "arn:aws-cn:ecr:ap-northeast-1:123456789012:repository/docker-hub/*");
        c.image_registry = Some("registry.internal:5000/dify".into());
        assert!(!sids(&doc(&PolicyInputs::of_stack("dify", "us-east-1", 1, &c))).contains(&"EcrPull"));
    }

    #[test]
    fn the_document_is_deterministic() {
        let mut p = PolicyInputs::of_stack("dify", "us-east-1", 2, &DifyConfig::default());
        p.secret_arns = ["arn:b".to_string(), "arn:a".to_string()].into();
        let once = render(&p, "aws");
        p.secret_arns = ["arn:a".to_string(), "arn:b".to_string()].into();
        assert_eq!(once, render(&p, "aws"));
        assert!(!once.contains(' '), "compact");
    }
}
