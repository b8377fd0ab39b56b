//! Protocol tests: the binary started as Terraform starts it (magic cookie, client certificate, port range), spoken to
//! over mTLS gRPC: handshake line, schema, StopProvider, GRPCController.Shutdown, and the refusals.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use terraform_provider_dify::protocol::codec;
use terraform_provider_dify::protocol::handshake::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};
use terraform_provider_dify::protocol::proto::plugin as gpb;
use terraform_provider_dify::protocol::proto::tfplugin6 as pb;
use terraform_provider_dify::framework::Provider;
use terraform_provider_dify::provider::DifyProvider;
use tonic::transport::{Channel, Endpoint};

use crate::harness::{provider_binary, read_line_with_timeout};

pub struct ClientIdentity {
    pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

pub fn client_identity() -> ClientIdentity {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    ClientIdentity { pem: cert.pem(), cert_der: cert.der().to_vec(), key_der: key.serialize_der() }
}

/// Trusts exactly the certificate from the handshake line, as go-plugin's client does.
#[derive(Debug)]
struct PinnedServer {
    der: Vec<u8>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(&self, cert: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        if cert.as_ref() == self.der.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))
        }
    }
    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.algorithms)
    }
    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

pub async fn mtls_channel(addr: SocketAddr, server_der: Vec<u8>, client: &ClientIdentity) -> Result<Channel, tonic::transport::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedServer { der: server_der, algorithms: provider.signature_verification_algorithms };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![CertificateDer::from(client.cert_der.clone())], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key_der.clone())))
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                // As Go's net package does (Terraform's side): no Nagle delay on small gRPC frames.
                tcp.set_nodelay(true)?;
                let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
}

pub struct Started {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub server_der: Vec<u8>,
    line: String,
    rest: std::sync::mpsc::Receiver<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_as_terraform(client: &ClientIdentity, ports: (u16, u16)) -> Started {
    start_binary_as_terraform(&provider_binary(), client, ports)
}

pub fn start_binary_as_terraform(binary: &std::path::Path, client: &ClientIdentity, ports: (u16, u16)) -> Started {
    let mut child = Command::new(binary)
        .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env("PLUGIN_MIN_PORT", ports.0.to_string())
        .env("PLUGIN_MAX_PORT", ports.1.to_string())
        .env("PLUGIN_CLIENT_CERT", &client.pem)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("TF_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the provider");
    let (line, rest) = read_line_with_timeout(child.stdout.take().unwrap(), Duration::from_secs(20));
    let fields: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(fields.len(), 6, "handshake line {line:?}");
    assert_eq!(&fields[..3], &["1", "6", "tcp"]);
    assert_eq!(fields[4], "grpc");
    let addr: SocketAddr = fields[3].parse().expect("address");
    let server_der = base64::engine::general_purpose::STANDARD_NO_PAD.decode(fields[5]).expect("unpadded base64 certificate");
    Started { child, addr, server_der, line, rest }
}

pub fn free_port_range() -> (u16, u16) {
    // A random window in the dynamic range; collisions only make the provider try the next port.
    let base = 20000 + (std::process::id() % 20000) as u16;
    (base, base + 20)
}

#[tokio::test]
async fn started_by_hand_it_explains_and_exits_non_zero() {
    let out = Command::new(provider_binary()).env_remove(MAGIC_COOKIE_KEY).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plugin for Terraform") && err.contains("terraform init"), "{err}");
}

#[tokio::test]
async fn a_client_without_protocol_6_is_refused() {
    let out = Command::new(provider_binary())
        .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "no handshake line");
    assert!(String::from_utf8_lossy(&out.stderr).contains("protocol 6"));
}

#[tokio::test]
async fn handshake_serves_the_schema_over_mtls_survives_stop_and_shuts_down_cleanly() {
    let client = client_identity();
    let ports = free_port_range();
    let mut p = start_as_terraform(&client, ports);
    assert!((ports.0..=ports.1).contains(&p.addr.port()), "port {} outside PLUGIN_MIN_PORT..PLUGIN_MAX_PORT", p.addr.port());
    assert!(p.addr.ip().is_loopback());
    let channel = mtls_channel(p.addr, p.server_der.clone(), &client).await.expect("mTLS connection");
    let mut provider = pb::provider_client::ProviderClient::new(channel.clone());

    let schema = provider.get_provider_schema(pb::get_provider_schema::Request {}).await.unwrap().into_inner();
    for name in ["dify_network", "dify_ami"] {
        let s = schema.data_source_schemas.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(!s.block.as_ref().unwrap().description.is_empty(), "{name} has a description");
    }
    let provider_block = schema.provider.unwrap().block.unwrap();
    for attr in ["region", "profile", "max_retries", "allowed_account_ids", "forbidden_account_ids", "skip_credentials_validation"] {
        assert!(provider_block.attributes.iter().any(|a| a.name == attr), "provider attribute {attr}");
    }
    for block in ["assume_role", "endpoints", "default_tags"] {
        assert!(provider_block.block_types.iter().any(|b| b.type_name == block), "provider block {block}");
    }
    assert!(schema.server_capabilities.unwrap().plan_destroy);

    let stopped = provider.stop_provider(pb::stop_provider::Request {}).await.unwrap().into_inner();
    assert_eq!(stopped.error, "");
    // Still serving after StopProvider.
    let meta = provider.get_metadata(pb::get_metadata::Request {}).await.unwrap().into_inner();
    assert_eq!(meta.data_sources.len(), 3, "dify_network, dify_ami, dify_instance_policy");

    let mut controller = gpb::grpc_controller_client::GrpcControllerClient::new(channel);
    controller.shutdown(gpb::Empty {}).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the provider did not exit after Shutdown");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let rest = p.rest.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    assert!(p.line.ends_with('\n') && rest.is_empty(), "stdout must hold the handshake line and nothing else, got extra {rest:?}");
}

#[tokio::test]
async fn a_client_with_another_certificate_is_refused() {
    let client = client_identity();
    let p = start_as_terraform(&client, free_port_range());
    let stranger = client_identity();
    let result = async {
        let channel = mtls_channel(p.addr, p.server_der.clone(), &stranger).await?;
        pb::provider_client::ProviderClient::new(channel)
            .get_provider_schema(pb::get_provider_schema::Request {})
            .await
            .map(|_| ())
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    assert!(result.is_err(), "a certificate other than PLUGIN_CLIENT_CERT must not get an answer");
}

/// A TCP server that accepts connections and never answers: an AWS endpoint that hangs.
fn black_hole() -> (String, std::thread::JoinHandle<()>, Arc<std::sync::atomic::AtomicBool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (url, handle, done)
}

fn dynamic(json: serde_json::Value, ty: &terraform_provider_dify::framework::Type) -> pb::DynamicValue {
    let v = codec::decode_json(json.to_string().as_bytes(), ty).unwrap();
    pb::DynamicValue { msgpack: codec::encode_msgpack(&v, ty).unwrap(), json: vec![] }
}

#[tokio::test]
async fn stop_provider_cancels_a_read_in_flight() {
    let (url, hole, done) = black_hole();
    let client = client_identity();
    let p = start_as_terraform(&client, free_port_range());
    let channel = mtls_channel(p.addr, p.server_der.clone(), &client).await.unwrap();
    let mut provider = pb::provider_client::ProviderClient::new(channel);

    let provider_ty = DifyProvider.schema().ty();
    let config = dynamic(
        serde_json::json!({"region": "us-east-1", "skip_credentials_validation": true, "max_retries": 0, "endpoints": {"ec2": url, "sts": url}}),
        &provider_ty,
    );
    let configured = provider
        .configure_provider(pb::configure_provider::Request { terraform_version: "1.15.5".into(), config: Some(config), client_capabilities: None })
        .await
        .unwrap()
        .into_inner();
    assert!(configured.diagnostics.is_empty(), "{:?}", configured.diagnostics);

    let ami_ty = DifyProvider.data_sources().iter().find(|d| d.type_name() == "dify_ami").unwrap().schema().ty();
    let mut reader = provider.clone();
    let read = tokio::spawn(async move {
        reader
            .read_data_source(pb::read_data_source::Request {
                type_name: "dify_ami".into(),
                config: Some(dynamic(serde_json::json!({}), &ami_ty)),
                provider_meta: None,
                client_capabilities: None,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    if read.is_finished() {
        panic!("the read should be hanging on the black-hole endpoint, but ended: {:?}", read.await);
    }
    provider.stop_provider(pb::stop_provider::Request {}).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), read).await.expect("the read must end after StopProvider").unwrap().unwrap().into_inner();
    assert!(answer.state.is_none());
    assert!(answer.diagnostics.iter().any(|d| d.summary.contains("cancelled")), "{:?}", answer.diagnostics);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    hole.join().unwrap();
}

#[tokio::test]
async fn debug_mode_prints_a_reattach_line_and_serves_without_tls() {
    let mut child = Command::new(provider_binary()).arg("--debug").env_remove(MAGIC_COOKIE_KEY).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("TF_REATTACH_PROVIDERS") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).expect("reattach line");
    let json = line.split_once('\'').map(|(_, rest)| rest.trim_end_matches('\'')).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
    let entry = parsed.as_object().unwrap().values().next().unwrap();
    assert_eq!(entry["ProtocolVersion"], 6);
    let addr = entry["Addr"]["String"].as_str().unwrap().to_string();
    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let schema = pb::provider_client::ProviderClient::new(channel).get_provider_schema(pb::get_provider_schema::Request {}).await.unwrap();
    assert!(schema.into_inner().data_source_schemas.contains_key("dify_network"));
    let _ = child.kill();
    let _ = child.wait();
}
