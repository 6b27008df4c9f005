//! Mutual TLS against a real redis-server with `tls-auth-clients yes`.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset};
use resilience::redis::{Keys, RedisClient, RedisConfig, RedisConfigBuilder, RedisError};
use support::RedisServer;

fn base(server: &RedisServer) -> RedisConfigBuilder {
    RedisConfig::builder()
        .host("localhost")
        .port(server.tls_port())
        .tls_ca_file(&server.tls_files().ca_cert)
        .circuit_breaker(Arc::new(CircuitBreaker::new(
            "redis-tls-test",
            CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
        )))
        .connect_timeout(Duration::from_secs(3))
}

async fn connect_with(
    server: &RedisServer,
    cert: &Path,
    key: &Path,
) -> Result<RedisClient, RedisError> {
    RedisClient::connect(base(server).tls_client_cert(cert, key).build().unwrap()).await
}

#[tokio::test]
async fn mutual_tls_needs_a_certificate_from_the_trusted_ca() {
    let server = RedisServer::builder()
        .password("s3cret-pw")
        .tls_auth_clients()
        .start();
    let tls = server.tls_files().clone();
    let with_cert = base(&server)
        .password("s3cret-pw")
        .tls_client_cert(&tls.client_cert, &tls.client_key)
        .build()
        .unwrap();
    let dbg = format!("{with_cert:?}");
    assert!(
        dbg.contains("client.key") && !dbg.contains("s3cret"),
        "{dbg}"
    );
    let redis = RedisClient::connect(with_cert).await.unwrap();
    redis.ping().await.unwrap();
    redis
        .set(&Keys::llm_response("mtls"), "ok", None)
        .await
        .unwrap();
    assert_eq!(
        redis
            .get::<_, String>(&Keys::llm_response("mtls"))
            .await
            .unwrap(),
        Some("ok".to_owned())
    );

    // No client certificate: the server refuses the handshake, reported as a TLS error, at once.
    let t = Instant::now();
    let e = RedisClient::connect(base(&server).password("s3cret-pw").build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::Tls { .. }), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A certificate from another CA is refused too.
    let e = RedisClient::connect(
        base(&server)
            .password("s3cret-pw")
            .tls_client_cert(&tls.other_client_cert, &tls.other_client_key)
            .build()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RedisError::Tls { .. }), "{e:?}");

    // Bad files: typed errors naming the file and its role, never the key's contents.
    let key_pem = std::fs::read_to_string(&tls.client_key).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap().to_owned();
    let missing = server.dir().join("missing.crt");
    let e = connect_with(&server, &missing, &tls.client_key)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RedisError::TlsFile { role: "client certificate", path, .. } if path == &missing),
        "{e:?}"
    );
    // The key where the certificate should be, and the certificate where the key should be.
    let e = connect_with(&server, &tls.client_key, &tls.client_key)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            RedisError::TlsFile {
                role: "client certificate",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains(&key_body), "{e:?}");
    let e = connect_with(&server, &tls.client_cert, &tls.client_cert)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RedisError::TlsFile { role: "client key", path, .. } if path == &tls.client_cert),
        "{e:?}"
    );
    // A key that belongs to another certificate.
    let e = connect_with(&server, &tls.client_cert, &tls.other_client_key)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RedisError::TlsFile { role: "client key", reason, .. } if reason.contains("does not match")),
        "{e:?}"
    );
    let other_key_pem = std::fs::read_to_string(&tls.other_client_key).unwrap();
    let other_body = other_key_pem.lines().nth(1).unwrap();
    assert!(!format!("{e} {e:?}").contains(other_body), "{e:?}");
}
