//! The go-plugin handshake: who started us, which protocol and port to use, and the one line printed on stdout.

use base64::Engine;

pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
pub const CORE_PROTOCOL_VERSION: u32 = 1;
pub const PLUGIN_PROTOCOL_VERSION: u32 = 6;

/// Shown, on stderr, to a person who runs the binary by hand.
pub const NOT_FOR_HUMANS: &str = "This binary is a plugin for Terraform and OpenTofu (terraform-provider-dify). \
It is not meant to be run directly: Terraform starts it when a configuration uses the \"dify\" provider.

To use it, install it where `terraform init` finds providers (a registry, a filesystem mirror, or dev_overrides)
and run `terraform init` and `terraform plan` in your configuration folder.
To debug it, run it with --debug and paste the TF_REATTACH_PROVIDERS line it prints into another shell.";

/// Settings Terraform passes through the environment.
#[derive(Debug, Default)]
pub struct Environment {
    pub protocol_versions: Option<String>,
    pub min_port: Option<u16>,
    pub max_port: Option<u16>,
    pub client_cert_pem: Option<String>,
}

impl Environment {
    pub fn from_env() -> Environment {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Environment {
            protocol_versions: var("PLUGIN_PROTOCOL_VERSIONS"),
            min_port: var("PLUGIN_MIN_PORT").and_then(|v| v.parse().ok()),
            max_port: var("PLUGIN_MAX_PORT").and_then(|v| v.parse().ok()),
            client_cert_pem: var("PLUGIN_CLIENT_CERT"),
        }
    }

    /// Checks that the client speaks protocol 6 (an absent list means it accepts what we serve).
    pub fn negotiate_protocol(&self) -> Result<u32, String> {
        match &self.protocol_versions {
            None => Ok(PLUGIN_PROTOCOL_VERSION),
            Some(list) => {
                if list.split(',').any(|v| v.trim() == PLUGIN_PROTOCOL_VERSION.to_string()) {
                    Ok(PLUGIN_PROTOCOL_VERSION)
                } else {
                    Err(format!(
                        "this provider speaks plugin protocol {PLUGIN_PROTOCOL_VERSION} only, but the client offered {list:?}; use Terraform 1.6 or later (the versions tested)"
                    ))
                }
            }
        }
    }

    /// The ports to try, in order: the range Terraform asked for, or any free port.
    pub fn ports(&self) -> Vec<u16> {
        match (self.min_port, self.max_port) {
            (Some(min), Some(max)) if min <= max => (min..=max).collect(),
            (Some(min), None) => (min..=u16::MAX).collect(),
            (None, Some(max)) => (1024..=max).collect(),
            _ => vec![0],
        }
    }
}

/// Whether the magic cookie says Terraform (or OpenTofu) started us.
pub fn started_by_terraform() -> bool {
    std::env::var(MAGIC_COOKIE_KEY).map(|v| v == MAGIC_COOKIE_VALUE).unwrap_or(false)
}

/// The handshake line: `1|6|tcp|127.0.0.1:PORT|grpc|CERT`, CERT being unpadded base64 of the server's DER certificate.
pub fn handshake_line(addr: &std::net::SocketAddr, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der.map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der)).unwrap_or_default();
    format!("{CORE_PROTOCOL_VERSION}|{PLUGIN_PROTOCOL_VERSION}|tcp|{addr}|grpc|{cert}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_negotiation_needs_version_6() {
        let env = Environment { protocol_versions: Some("5,6".into()), ..Default::default() };
        assert_eq!(env.negotiate_protocol(), Ok(6));
        let env = Environment { protocol_versions: Some("5".into()), ..Default::default() };
        assert!(env.negotiate_protocol().unwrap_err().contains("protocol 6"));
    }

    #[test]
    fn port_range_is_honoured() {
        let env = Environment { min_port: Some(10000), max_port: Some(10002), ..Default::default() };
        assert_eq!(env.ports(), vec![10000, 10001, 10002]);
        assert_eq!(Environment::default().ports(), vec![0]);
    }

    #[test]
    fn handshake_line_has_six_fields() {
        let line = handshake_line(&"127.0.0.1:1234".parse().unwrap(), Some(&[1, 2, 3]));
        assert_eq!(line, "1|6|tcp|127.0.0.1:1234|grpc|AQID");
    }
}
