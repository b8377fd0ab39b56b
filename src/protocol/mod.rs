//! The wire: go-plugin handshake and TLS, the tfplugin6 gRPC server, DynamicValue codecs, schema and diagnostic
//! conversion. Knows Terraform's protocol; knows nothing of AWS or Dify.

pub mod codec;
pub mod convert;
pub mod handshake;
pub mod serve;
pub mod server;
pub mod tls;

/// The boxed stream tonic's generated traits use for server-streaming responses.
pub type BoxStream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// Code generated from proto/ by build.rs.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
}
