//! Sentinel with passwords (different ones for the sentinels and the data nodes) and mutual TLS
//! everywhere, against real processes; the master check interval option.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset};
use resilience::redis::{
    Keys, RateWindow, RedisClient, RedisConfig, RedisConfigBuilder, RedisError, SentinelOptions,
};
use support::processes_in_dir;
use support::sentinel::{MASTER_NAME, SentinelSetup};

const DATA_PW: &str = "data-pw-1";
const SENTINEL_PW: &str = "sentinel-pw-2";

fn base(setup: &SentinelSetup) -> RedisConfigBuilder {
    RedisConfig::builder()
        .key_prefix("sen")
        .tls_ca_file(&setup.tls_files().ca_cert)
        .tls_client_cert(
            &setup.tls_files().client_cert,
            &setup.tls_files().client_key,
        )
        .circuit_breaker(Arc::new(CircuitBreaker::new(
            "redis-sentinel-secure",
            CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
        )))
        .connect_timeout(Duration::from_secs(3))
        .response_timeout(Duration::from_secs(1))
}

/// Commands served so far by sentinel `i` (Sentinel has no `commandstats`).
fn commands(setup: &SentinelSetup, i: usize) -> i64 {
    setup
        .cli(setup.sentinel_port(i), &["INFO", "stats"])
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn sentinel_with_auth_and_tls() {
    let setup = SentinelSetup::builder()
        .password(DATA_PW)
        .sentinel_password(SENTINEL_PW)
        .tls_auth_clients()
        .start(5000);
    let dir = setup.dir().to_owned();
    let sentinels = setup.sentinel_tls_addrs();
    let options = |sentinel_pw: &str| {
        SentinelOptions::builder(MASTER_NAME, sentinels.clone())
            .password(sentinel_pw)
            .master_check_interval(Duration::from_millis(50))
            .build()
            .unwrap()
    };

    let redis = RedisClient::connect_sentinel_with(
        base(&setup).password(DATA_PW).build().unwrap(),
        options(SENTINEL_PW),
    )
    .await
    .unwrap();
    redis.ping().await.unwrap();
    let key = Keys::llm_response("sentinel-secure");
    redis.set(&key, "v", None).await.unwrap();
    assert_eq!(
        redis.get::<_, String>(&key).await.unwrap(),
        Some("v".to_owned())
    );
    // The write reached the master, which the sentinels name by its TLS port.
    assert_eq!(
        setup.cli(setup.master_port(), &["GET", &redis.key(&key).unwrap()]),
        "v"
    );
    assert!(
        redis
            .rate_limit(&Keys::rate_api_key("s", RateWindow::Second), 1, 1.0, 1)
            .await
            .unwrap()
            .allowed
    );

    // The watcher asks the first sentinel every 50 ms (over TLS, with the sentinel password).
    // The sentinels' own chatter (pings, hellos) reaches the second one as much as the first,
    // so the difference is the watcher's: 15 queries take about 0.75 s (allowed: 3 s), where
    // the 500 ms default would need 7.5 s.
    let (base0, base1) = (commands(&setup, 0), commands(&setup, 1));
    let t = Instant::now();
    let extra = || (commands(&setup, 0) - base0) - (commands(&setup, 1) - base1);
    let asked = support::poll_until(Duration::from_secs(3), async || {
        (extra() >= 15).then_some(())
    })
    .await;
    assert!(
        asked.is_some(),
        "only {} extra commands on the watched sentinel in {:?}",
        extra(),
        t.elapsed()
    );

    // Wrong sentinel password; no data password: typed auth errors, at once.
    for (data_pw, sentinel_pw) in [(Some(DATA_PW), "wrong-pw"), (None, SENTINEL_PW)] {
        let mut b = base(&setup);
        if let Some(p) = data_pw {
            b = b.password(p);
        }
        let t = Instant::now();
        let e = RedisClient::connect_sentinel_with(b.build().unwrap(), options(sentinel_pw))
            .await
            .unwrap_err();
        if data_pw.is_some() {
            assert!(
                matches!(e, RedisError::SentinelAuth { .. }),
                "{sentinel_pw}: {e:?}"
            );
        } else {
            assert!(matches!(e, RedisError::Auth { .. }), "{e:?}");
        }
        assert_eq!(e.kind(), "auth");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(!format!("{e} {e:?}").contains("wrong-pw"), "{e:?}");
    }

    // TLS is verified on the way to the sentinels: another CA fails.
    let e = RedisClient::connect_sentinel_with(
        base(&setup)
            .tls_ca_file(&setup.tls_files().other_ca_cert)
            .password(DATA_PW)
            .build()
            .unwrap(),
        options(SENTINEL_PW),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RedisError::Tls { .. }), "{e:?}");
    // Without a client certificate the sentinels refuse the handshake.
    let no_cert = RedisConfig::builder()
        .password(DATA_PW)
        .tls_ca_file(&setup.tls_files().ca_cert)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let e = RedisClient::connect_sentinel_with(no_cert, options(SENTINEL_PW))
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::Tls { .. }), "{e:?}");

    drop(redis);
    drop(setup);
    assert!(
        processes_in_dir(&dir).is_empty(),
        "a server outlived the test"
    );
}

#[test]
fn master_check_interval_is_validated() {
    let b = || SentinelOptions::builder("m", [("127.0.0.1", 26379u16)]);
    let e = b()
        .master_check_interval(Duration::from_millis(9))
        .build()
        .unwrap_err();
    assert_eq!(e.field, "master_check_interval");
    let o = b()
        .master_check_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(o.master_check_interval(), Duration::from_millis(10));
    assert_eq!(
        b().build().unwrap().master_check_interval(),
        resilience::redis::DEFAULT_MASTER_CHECK_INTERVAL
    );
    let e = b().username("u").build().unwrap_err();
    assert_eq!(e.field, "sentinel.password");
    let o = b().password("hunter2").build().unwrap();
    assert!(!format!("{o:?}").contains("hunter2"));
}
