//! TLS settings for `wss://`, from luasec-shaped parameters.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// The parts of luasec's parameter table that apply to a TLS client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// false for luasec's `verify = 'none'`.
    pub verify_peer: bool,
    /// CA certificates (PEM) that replace the platform's roots.
    pub cafile: Option<PathBuf>,
    /// Client certificate chain and key (PEM), for servers that ask for one.
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// luasec's protocol name: `any`, `sslv23`, `tlsv1_2` or `tlsv1_3`.
    pub protocol: Option<String>,
}

impl TlsOptions {
    /// Verify against the platform's roots, as a plain `wss://` URL should.
    pub fn platform_default() -> Self {
        TlsOptions {
            verify_peer: true,
            ..TlsOptions::default()
        }
    }
}

/// Whether a TLS server asks its clients for certificates (luasec's `verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// `'none'`: not asked for.
    NotAsked,
    /// `'peer'`: asked for, checked when given.
    Optional,
    /// `{'peer', 'fail_if_no_peer_cert'}`: required.
    Required,
}

/// The parts of luasec's parameter table that apply to a TLS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsOptions {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub cafile: Option<PathBuf>,
    pub client_certificates: ClientCertificates,
    pub protocol: Option<String>,
}

/// The server configuration these options describe; every file is read here, so that a
/// bad one fails `listen`, not the first client.
pub fn server_config(options: &ServerTlsOptions) -> Result<Arc<ServerConfig>, String> {
    let versions = protocol_versions(options.protocol.as_deref())?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|err| format!("TLS setup failed: {err}"))?;
    let builder = match options.client_certificates {
        ClientCertificates::NotAsked => builder.with_no_client_auth(),
        asked => {
            let Some(cafile) = &options.cafile else {
                return Err("verify = 'peer' needs a cafile to check client certificates".into());
            };
            let roots = Arc::new(roots_from_file(cafile)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = if asked == ClientCertificates::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|err| format!("cannot check client certificates: {err}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let chain = certificates_from_file(&options.certificate)?;
    if chain.is_empty() {
        return Err(format!(
            "no certificate in '{}'",
            options.certificate.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&options.key).map_err(|err| {
        format!(
            "cannot read key '{}': {err} (an encrypted key must be decrypted first, e.g. with openssl pkey)",
            options.key.display()
        )
    })?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|err| format!("certificate and key do not fit: {err}"))?;
    // The only application protocol on the port is HTTP/1.1 (the upgrade).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The client configuration these options describe.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, String> {
    let versions = protocol_versions(options.protocol.as_deref())?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|err| format!("TLS setup failed: {err}"))?;
    let builder = if options.verify_peer {
        let roots = match &options.cafile {
            Some(path) => Arc::new(roots_from_file(path)?),
            None => platform_roots()?,
        };
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateVerification(provider())))
    };
    let config = match (&options.certificate, &options.key) {
        (Some(cert_path), Some(key_path)) => {
            let chain = certificates_from_file(cert_path)?;
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|err| format!("cannot read key '{}': {err}", key_path.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| format!("bad client certificate: {err}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn protocol_versions(
    protocol: Option<&str>,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion], String> {
    static ANY: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match protocol {
        None | Some("any") | Some("sslv23") => Ok(ANY),
        Some("tlsv1_2") => Ok(TLS12),
        Some("tlsv1_3") => Ok(TLS13),
        Some(other) => Err(format!("TLS protocol '{other}' is not supported")),
    }
}

/// The platform's trusted roots, read once per process.
fn platform_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no trusted root certificates found on this system".to_string());
            }
            Ok(Arc::new(store))
        })
        .clone()
}

fn roots_from_file(path: &PathBuf) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certificates_from_file(path)?);
    if added == 0 {
        return Err(format!("no usable certificate in '{}'", path.display()));
    }
    Ok(store)
}

fn certificates_from_file(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let unreadable = |err: rustls::pki_types::pem::Error| {
        format!("cannot read certificates '{}': {err}", path.display())
    };
    CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)
}

/// luasec's `verify = 'none'`: any certificate is accepted, but the handshake signatures are
/// still checked so that the session keys belong to whoever sent the certificate.
#[derive(Debug)]
struct NoCertificateVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_protocols_are_refused_with_their_name() {
        let options = TlsOptions {
            protocol: Some("tlsv1".into()),
            ..TlsOptions::platform_default()
        };
        let err = client_config(&options).unwrap_err();
        assert!(err.contains("'tlsv1'"), "{err}");
    }

    #[test]
    fn unverified_config_builds_without_roots() {
        let options = TlsOptions::default();
        assert!(client_config(&options).is_ok());
    }

    #[test]
    fn missing_cafile_is_reported_with_its_path() {
        let options = TlsOptions {
            cafile: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::platform_default()
        };
        let err = client_config(&options).unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
