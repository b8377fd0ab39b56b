//! Serving: bind 127.0.0.1 in the allowed port range, optional mTLS, the go-plugin side services, the handshake line,
//! and orderly shutdown (GRPCController.Shutdown, or Ctrl-C in --debug mode).

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use crate::framework::server::ProviderServer;
use crate::log;

use super::handshake::{self, Environment};
use super::proto::health as hpb;
use super::proto::plugin as gpb;
use super::proto::tfplugin6::provider_server::ProviderServer as ProviderGrpc;
use super::server::ProviderService;
use super::tls;
use super::BoxStream;

/// How long connections may finish after GRPCController.Shutdown before the process exits regardless.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

/// How the process was started.
pub enum Mode {
    /// By Terraform: handshake on stdout, optional mTLS.
    Plugin,
    /// By a developer with --debug: no TLS, prints TF_REATTACH_PROVIDERS.
    Debug { provider_address: String },
}

/// One accepted connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn bind(env: &Environment) -> Result<TcpListener, String> {
    let mut last_error = String::from("no port to try");
    for port in env.ports() {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last_error = format!("127.0.0.1:{port}: {e}"),
        }
    }
    Err(format!("could not listen on any allowed port ({last_error})"))
}

/// Accepts connections until shutdown, running each TLS handshake on its own task.
fn incoming(listener: TcpListener, acceptor: Option<TlsAcceptor>, shutdown: CancellationToken) -> impl Stream<Item = std::io::Result<Conn>> {
    let (tx, rx) = mpsc::channel::<std::io::Result<Conn>>(16);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    log::warn("accept failed", &[("error", e.to_string().into())]);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match &acceptor {
                None => {
                    if tx.send(Ok(Conn::Plain(stream))).await.is_err() {
                        break;
                    }
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(tls) => {
                                let _ = tx.send(Ok(Conn::Tls(Box::new(tls)))).await;
                            }
                            Err(e) => log::warn("TLS handshake refused", &[("peer", peer.to_string().into()), ("error", e.to_string().into())]),
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

struct Controller {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gpb::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<gpb::Empty>) -> Result<Response<gpb::Empty>, Status> {
        log::debug("shutdown requested by the plugin client", &[]);
        self.shutdown.cancel();
        Ok(Response::new(gpb::Empty {}))
    }
}

/// go-plugin's stdio forwarding. The provider never writes to stdout after the handshake, so the stream is empty.
struct Stdio;

#[tonic::async_trait]
impl gpb::grpc_stdio_server::GrpcStdio for Stdio {
    async fn stream_stdio(&self, _: Request<()>) -> Result<Response<BoxStream<gpb::StdioData>>, Status> {
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }
}

/// go-plugin's connection broker. The provider dispenses no sub-plugins, so the stream just stays open until shutdown.
struct Broker {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gpb::grpc_broker_server::GrpcBroker for Broker {
    async fn start_stream(&self, _: Request<tonic::Streaming<gpb::ConnInfo>>) -> Result<Response<BoxStream<gpb::ConnInfo>>, Status> {
        let shutdown = self.shutdown.clone();
        let stream = futures::stream::once(async move {
            shutdown.cancelled().await;
            Err(Status::cancelled("plugin shutting down"))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

struct Health;

#[tonic::async_trait]
impl hpb::health_server::Health for Health {
    async fn check(&self, _: Request<hpb::HealthCheckRequest>) -> Result<Response<hpb::HealthCheckResponse>, Status> {
        Ok(Response::new(hpb::HealthCheckResponse { status: hpb::health_check_response::ServingStatus::Serving as i32 }))
    }
    async fn watch(&self, _: Request<hpb::HealthCheckRequest>) -> Result<Response<BoxStream<hpb::HealthCheckResponse>>, Status> {
        let serving = hpb::HealthCheckResponse { status: hpb::health_check_response::ServingStatus::Serving as i32 };
        Ok(Response::new(Box::pin(futures::stream::iter(vec![Ok(serving)]))))
    }
}

/// How often a plugin checks that the Terraform that started it is still alive.
const ORPHAN_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// go-plugin has no way to tell a plugin that its host died: a Terraform killed with SIGKILL (a CI timeout, the OOM
/// killer) would leave this process serving nobody, still changing AWS. When the parent changes (the process was
/// re-parented), stop every operation at its next safe point, as StopProvider would, and exit.
async fn stop_when_orphaned(server: Arc<ProviderServer>, shutdown: CancellationToken) {
    let parent = std::os::unix::process::parent_id();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ORPHAN_CHECK) => {},
            _ = shutdown.cancelled() => return,
        }
        if std::os::unix::process::parent_id() != parent {
            log::warn("Terraform exited without stopping the provider; stopping operations in flight and exiting", &[("terraform_pid", parent.into())]);
            server.stop();
            shutdown.cancel();
            return;
        }
    }
}

fn reattach_value(provider_address: &str, addr: &SocketAddr) -> String {
    serde_json::json!({
        provider_address: {
            "Protocol": "grpc",
            "ProtocolVersion": handshake::PLUGIN_PROTOCOL_VERSION,
            "Pid": std::process::id(),
            "Test": true,
            "Addr": {"Network": "tcp", "String": addr.to_string()}
        }
    })
    .to_string()
}

/// Serves until shutdown. Errors are for the person starting the binary; the caller prints them and exits non-zero.
pub async fn serve(server: Arc<ProviderServer>, mode: Mode) -> Result<(), String> {
    let env = Environment::from_env();
    env.negotiate_protocol()?;
    let listener = bind(&env).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    let (acceptor, server_cert) = match (&mode, &env.client_cert_pem) {
        (Mode::Plugin, Some(pem)) => {
            let client = tls::parse_client_cert(pem)?;
            let identity = tls::generate_identity()?;
            let config = tls::server_config(&identity, client)?;
            (Some(TlsAcceptor::from(config)), Some(identity.cert_der))
        }
        _ => (None, None),
    };

    let shutdown = CancellationToken::new();
    let conns = incoming(listener, acceptor, shutdown.clone());
    let stop_operations = server.clone();

    match &mode {
        Mode::Plugin => {
            // The one line on stdout: everything else goes to stderr.
            let line = handshake::handshake_line(&addr, server_cert.as_deref());
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| format!("writing the handshake: {e}"))?;
            // Terraform sends SIGINT to the whole process group on Ctrl-C and then asks us to stop over gRPC;
            // dying on the signal would lose the state of an apply in flight.
            tokio::spawn(async {
                while tokio::signal::ctrl_c().await.is_ok() {
                    log::debug("interrupt received; waiting for Terraform to stop the provider", &[]);
                }
            });
            tokio::spawn(stop_when_orphaned(stop_operations, shutdown.clone()));
        }
        Mode::Debug { provider_address } => {
            let value = reattach_value(provider_address, &addr);
            // A closed stdout must not kill a debug session: write errors are ignored.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "Provider started in debug mode. To attach Terraform, run in another shell:\n");
            let _ = writeln!(out, "\texport TF_REATTACH_PROVIDERS='{value}'\n");
            let _ = writeln!(out, "Press Ctrl-C to stop.");
            let _ = out.flush();
            drop(out);
            let token = shutdown.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                token.cancel();
            });
        }
    }
    log::info("provider serving", &[("address", addr.to_string().into()), ("tls", server_cert.is_some().into())]);

    let serving = tonic::transport::Server::builder()
        .add_service(ProviderGrpc::new(ProviderService::new(server)))
        .add_service(gpb::grpc_controller_server::GrpcControllerServer::new(Controller { shutdown: shutdown.clone() }))
        .add_service(gpb::grpc_stdio_server::GrpcStdioServer::new(Stdio))
        .add_service(gpb::grpc_broker_server::GrpcBrokerServer::new(Broker { shutdown: shutdown.clone() }))
        .add_service(hpb::health_server::HealthServer::new(Health))
        .serve_with_incoming_shutdown(conns, shutdown.cancelled());
    // Graceful shutdown waits for clients to close their connections; go-plugin gives a plugin two seconds to exit
    // after Shutdown before killing it, so stop waiting well before that.
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = serving => served.map_err(|e| format!("serving gRPC: {e}"))?,
        _ = grace => log::debug("clients kept connections open after shutdown; exiting anyway", &[]),
    }
    log::info("provider stopped", &[]);
    Ok(())
}
