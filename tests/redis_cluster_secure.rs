//! Redis Cluster with `requirepass` and mutual TLS everywhere (`tls-cluster yes`,
//! `tls-replication yes`, `tls-auth-clients yes`), against real processes.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset};
use resilience::redis::{
    Keys, RateWindow, RedisClient, RedisConfig, RedisConfigBuilder, RedisError,
};
use support::TlsFiles;
use support::cluster::RedisCluster;
use support::processes_in_dir;

const PASSWORD: &str = "cluster-pw-123";

fn base(tls: &TlsFiles, ca: &std::path::Path) -> RedisConfigBuilder {
    RedisConfig::builder()
        .host("127.0.0.1")
        .key_prefix("sec")
        .tls_ca_file(ca)
        .tls_client_cert(&tls.client_cert, &tls.client_key)
        .circuit_breaker(Arc::new(CircuitBreaker::new(
            "redis-cluster-secure",
            CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
        )))
        .connect_timeout(Duration::from_secs(3))
        .response_timeout(Duration::from_secs(1))
}

#[tokio::test]
async fn cluster_with_password_over_tls() {
    let cluster = RedisCluster::builder()
        .password(PASSWORD)
        .tls_auth_clients()
        .masters_only()
        .start(2000);
    let dir = cluster.dir().to_owned();
    let tls = cluster.tls_files().clone();
    let seeds = cluster.tls_seeds();
    let port = seeds[0].1;

    let redis = RedisClient::connect_cluster(
        base(&tls, &tls.ca_cert)
            .port(port)
            .password(PASSWORD)
            .build()
            .unwrap(),
        seeds.clone(),
    )
    .await
    .unwrap();
    redis.ping().await.unwrap();
    // Keys spread over the three masters: every node is reached over TLS, with the password.
    let mut ports = std::collections::HashSet::new();
    for i in 0..12 {
        let key = Keys::llm_response(format!("k{i}"));
        redis.set(&key, i, None).await.unwrap();
        assert_eq!(redis.get::<_, i64>(&key).await.unwrap(), Some(i));
        if let Some((p, _)) = cluster.master_for_key(&redis.key(&key).unwrap()) {
            ports.insert(p);
        }
    }
    assert_eq!(ports.len(), 3, "the keys should cover every master");
    // Scripts were loaded on every node.
    let d = redis
        .rate_limit(&Keys::rate_api_key("c", RateWindow::Second), 2, 1.0, 1)
        .await
        .unwrap();
    assert!(d.allowed && d.remaining == 1, "{d:?}");

    // A wrong password, or none: a typed auth error, well within the connect timeout.
    for password in [Some("wrong-pw"), None] {
        let mut b = base(&tls, &tls.ca_cert).port(port);
        if let Some(p) = password {
            b = b.password(p);
        }
        let t = Instant::now();
        let e = RedisClient::connect_cluster(b.build().unwrap(), seeds.clone())
            .await
            .unwrap_err();
        assert!(matches!(e, RedisError::Auth { .. }), "{password:?}: {e:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(!e.to_string().contains("wrong-pw"), "{e}");
    }

    // TLS is really verified: trusting another CA fails the handshake.
    let e = RedisClient::connect_cluster(
        base(&tls, &tls.other_ca_cert)
            .port(port)
            .password(PASSWORD)
            .build()
            .unwrap(),
        seeds.clone(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RedisError::Tls { .. }), "{e:?}");

    // Without a client certificate the nodes refuse the handshake.
    let no_cert = RedisConfig::builder()
        .host("127.0.0.1")
        .port(port)
        .password(PASSWORD)
        .tls_ca_file(&tls.ca_cert)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let e = RedisClient::connect_cluster(no_cert, seeds.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::Tls { .. }), "{e:?}");

    drop(redis);
    drop(cluster);
    assert!(
        processes_in_dir(&dir).is_empty(),
        "a cluster node outlived the test"
    );
}
