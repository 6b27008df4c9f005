//! Building the redis-rs client from a config: the address, TLS and mutual TLS (rustls).

use std::path::Path;
use std::sync::Arc;

use ::redis::io::tcp::TcpSettings;
use ::redis::{
    Client, ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo,
    TlsCertificates,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::config::{RedisConfig, TlsClientCert, TlsOptions};
use super::error::RedisError;

pub(crate) fn build_client(config: &RedisConfig) -> Result<Client, RedisError> {
    let addr = match &config.tls {
        None => ConnectionAddr::Tcp(config.host.clone(), config.port),
        Some(_) => ConnectionAddr::TcpTls {
            host: config.host.clone(),
            port: config.port,
            insecure: false,
            tls_params: None,
        },
    };
    let mut redis_info = RedisConnectionInfo::default()
        .set_db(config.db)
        .set_lib_name("resilience", env!("CARGO_PKG_VERSION"));
    if let Some(u) = &config.username {
        redis_info = redis_info.set_username(u);
    }
    if let Some(p) = &config.password {
        redis_info = redis_info.set_password(p.expose());
    }
    let info = addr
        .into_connection_info()
        .map_err(|_| RedisError::InvalidUrl {
            reason: "the address could not be used",
        })?
        // redis 1.8 leaves TCP_NODELAY off by default; small request/reply traffic needs it.
        .set_tcp_settings(TcpSettings::default().set_nodelay(true))
        .set_redis_settings(redis_info);
    let Some(tls) = &config.tls else {
        return Client::open(info).map_err(|_| RedisError::InvalidUrl {
            reason: "the address could not be used",
        });
    };
    Client::build_with_tls(info, tls_certificates(tls)?).map_err(|e| RedisError::Tls {
        reason: e.to_string(),
    })
}

/// Reads and checks the TLS files of `tls` (CA certificates, client certificate and key), once
/// per connect: a bad file is reported here, naming it, rather than as a failed handshake.
pub(crate) fn tls_certificates(tls: &TlsOptions) -> Result<TlsCertificates, RedisError> {
    install_crypto_provider();
    let root_cert = match &tls.ca_file {
        None => None,
        Some(path) => Some(read_certs(path, "CA certificate")?.0),
    };
    let client_tls = match &tls.client_cert {
        None => None,
        Some(c) => Some(read_client_cert(c)?),
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// The file's bytes and its parsed certificates (at least one).
fn read_certs(
    path: &Path,
    role: &'static str,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), RedisError> {
    let file_err = |reason: String| RedisError::TlsFile {
        role,
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(format!("not a valid PEM certificate ({e})")))?;
    if certs.is_empty() {
        return Err(file_err(
            "no `-----BEGIN CERTIFICATE-----` block found".to_owned(),
        ));
    }
    Ok((bytes, certs))
}

/// The client certificate and key, checked to parse and to belong together. Errors describe the
/// problem, never the key's bytes.
fn read_client_cert(c: &TlsClientCert) -> Result<ClientTlsConfig, RedisError> {
    let (cert_bytes, chain) = read_certs(&c.cert_file, "client certificate")?;
    let key_err = |reason: String| RedisError::TlsFile {
        role: "client key",
        path: c.key_file.clone(),
        reason,
    };
    let key_bytes = std::fs::read(&c.key_file).map_err(|e| key_err(e.to_string()))?;
    // `PrivateKeyDer`'s parse error names the PEM section problem, not the bytes.
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        key_err(format!(
            "no unencrypted PEM private key found ({e}); expected `-----BEGIN PRIVATE KEY-----`, \
             `BEGIN EC PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`"
        ))
    })?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        key_err(match e {
            rustls::Error::InconsistentKeys(_) => {
                "does not match the client certificate's public key".to_owned()
            }
            e => format!("unusable private key ({e})"),
        })
    })?;
    Ok(ClientTlsConfig {
        client_cert: cert_bytes,
        client_key: key_bytes,
    })
}

/// rustls needs a process-wide crypto provider; install ring's unless the application already
/// chose one.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is then in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
