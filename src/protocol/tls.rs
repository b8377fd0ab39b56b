//! go-plugin AutoMTLS: a fresh self-signed server certificate per process, and a client verifier that trusts
//! exactly the certificate Terraform passed in `PLUGIN_CLIENT_CERT`.
//!
//! Terraform's client certificate is self-signed and marked as a CA, which WebPKI refuses as an end-entity
//! certificate; so instead of chain building, the verifier pins the exact certificate and checks the handshake
//! signature with it. go-plugin's certificates use P-521 keys, which ring cannot verify, so P-521/SHA-512 handshake
//! signatures are verified with the RustCrypto `p521` crate.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, PrivatePkcs8KeyDer, SignatureVerificationAlgorithm, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, ServerConfig, SignatureScheme};

/// The server's certificate (DER) and its PKCS#8 key.
pub struct ServerIdentity {
    pub cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

/// Generates a P-256 certificate for "localhost", valid as client and server, as go-plugin's own are.
pub fn generate_identity() -> Result<ServerIdentity, String> {
    self_signed_localhost().map_err(|e| format!("generating the TLS certificate: {e}"))
}

fn self_signed_localhost() -> Result<ServerIdentity, rcgen::Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params.distinguished_name.push(DnType::CommonName, "localhost");
    params.distinguished_name.push(DnType::OrganizationName, "terraform-provider-dify");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyCertSign];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key)?;
    Ok(ServerIdentity { cert_der: cert.der().to_vec(), key_der: key.serialize_der() })
}

/// Parses the PEM certificate from `PLUGIN_CLIENT_CERT`.
pub fn parse_client_cert(pem: &str) -> Result<Vec<u8>, String> {
    let mut reader = pem.as_bytes();
    let first = rustls_pemfile::certs(&mut reader).next();
    match first {
        Some(Ok(der)) => Ok(der.to_vec()),
        Some(Err(e)) => Err(format!("PLUGIN_CLIENT_CERT is not a valid PEM certificate: {e}")),
        None => Err("PLUGIN_CLIENT_CERT holds no PEM certificate".to_string()),
    }
}

#[derive(Debug)]
struct PinnedClientCert {
    expected: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(&self, end_entity: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: UnixTime) -> Result<ClientCertVerified, Error> {
        if end_entity.as_ref() == self.expected.as_slice() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        }
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// ECDSA over P-521 with SHA-512, the signature go-plugin's client certificates make.
#[derive(Debug)]
struct EcdsaP521Sha512;

/// Splits a DER `SEQUENCE { INTEGER r, INTEGER s }` into fixed-width big-endian scalars.
fn der_ecdsa_scalars(der: &[u8], width: usize) -> Option<Vec<u8>> {
    fn read_len(b: &[u8], i: &mut usize) -> Option<usize> {
        let first = *b.get(*i)? as usize;
        *i += 1;
        if first < 0x80 {
            return Some(first);
        }
        let n = first & 0x7f;
        let mut len = 0usize;
        for _ in 0..n {
            len = (len << 8) | *b.get(*i)? as usize;
            *i += 1;
        }
        Some(len)
    }
    let mut i = 0;
    if *der.get(i)? != 0x30 {
        return None;
    }
    i += 1;
    let total = read_len(der, &mut i)?;
    if i + total != der.len() {
        return None;
    }
    let mut out = Vec::with_capacity(width * 2);
    for _ in 0..2 {
        if *der.get(i)? != 0x02 {
            return None;
        }
        i += 1;
        let len = read_len(der, &mut i)?;
        let mut int = der.get(i..i + len)?;
        i += len;
        while int.len() > width && int.first() == Some(&0) {
            int = &int[1..];
        }
        if int.len() > width {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, width - int.len()));
        out.extend_from_slice(int);
    }
    (i == der.len()).then_some(out)
}

impl SignatureVerificationAlgorithm for EcdsaP521Sha512 {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        use p521::ecdsa::signature::Verifier;
        let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let scalars = der_ecdsa_scalars(signature, 66).ok_or(InvalidSignature)?;
        let sig = p521::ecdsa::Signature::from_slice(&scalars).map_err(|_| InvalidSignature)?;
        key.verify(message, &sig).map_err(|_| InvalidSignature)
    }
    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }
    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }
}

/// ring's algorithms plus P-521, leaked once per process to get the `'static` tables rustls wants.
fn algorithms_with_p521(base: WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    static P521: EcdsaP521Sha512 = EcdsaP521Sha512;
    let p521: &'static dyn SignatureVerificationAlgorithm = &P521;
    let mut all: Vec<&'static dyn SignatureVerificationAlgorithm> = base.all.to_vec();
    all.push(p521);
    let mut mapping = vec![(SignatureScheme::ECDSA_NISTP521_SHA512, &*Box::leak(vec![p521].into_boxed_slice()))];
    mapping.extend_from_slice(base.mapping);
    WebPkiSupportedAlgorithms { all: Box::leak(all.into_boxed_slice()), mapping: Box::leak(mapping.into_boxed_slice()) }
}

/// A TLS server configuration for gRPC (ALPN h2) that requires the pinned client certificate.
pub fn server_config(identity: &ServerIdentity, client_cert_der: Vec<u8>) -> Result<Arc<ServerConfig>, String> {
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedClientCert { expected: client_cert_der, algorithms: algorithms_with_p521(provider.signature_verification_algorithms) };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            vec![CertificateDer::from(identity.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone())),
        )
        .map_err(|e| format!("building TLS configuration: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
