//! The keyed HTTP rate-limit layer in an axum `Router`, served on a real socket and called with
//! a real HTTP client. Time is driven through a `ManualClock`, never by sleeping.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use resilience::integration::http::{ClientIp, HeaderKey, HttpRateLimitLayer, MissingKey, key_fn};
use resilience::rate_limit::{FailurePolicy, KeyedRateLimiter, ManualClock, RedisRateLimiter};
use resilience::redis::{RedisClient, RedisConfig};
use support::RedisServer;

type Limiter<K> = Arc<KeyedRateLimiter<K, ManualClock>>;

/// A limiter of `burst` tokens, one back every 10 s, on a manual clock.
fn new_limiter<K: std::hash::Hash + Eq>(burst: u32) -> (Limiter<K>, ManualClock) {
    let clock = ManualClock::new();
    let limiter = KeyedRateLimiter::builder()
        .per(Duration::from_secs(10))
        .burst(burst)
        .clock(clock.clone())
        .build()
        .unwrap();
    (Arc::new(limiter), clock)
}

/// Serves `app` on 127.0.0.1:0 with the peer address in `ConnectInfo`; the server task ends
/// with the test's runtime.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// A client whose connections come from `local` (any 127.0.0.0/8 address works on loopback).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

async fn get_with(
    client: &reqwest::Client,
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client.get(format!("http://{addr}/"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Tokens left for `key`, read without taking any.
fn remaining<K: std::hash::Hash + Eq + Clone>(limiter: &Limiter<K>, key: &K) -> u64 {
    limiter.decide_key(key, 0).unwrap().remaining
}

#[tokio::test]
async fn burst_then_429_with_headers_and_retry_after_honoured() {
    let (limiter, clock) = new_limiter::<IpAddr>(3);
    let layer = HttpRateLimitLayer::builder(ClientIp::peer(), limiter.clone())
        .policy_name("per-ip")
        .x_ratelimit_headers(true)
        .build()
        .unwrap();
    let addr = serve(app().layer(layer)).await;
    let client = client_from("127.0.0.1");

    for (r, t) in [(2, 10), (1, 20), (0, 30)] {
        let res = get_with(&client, addr, &[]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            header(&res, "ratelimit-policy"),
            Some(r#""per-ip";q=3;w=30"#)
        );
        let expected = format!(r#""per-ip";r={r};t={t}"#);
        assert_eq!(header(&res, "ratelimit"), Some(expected.as_str()));
        assert_eq!(header(&res, "x-ratelimit-limit"), Some("3"));
        assert_eq!(
            header(&res, "x-ratelimit-remaining"),
            Some(r.to_string().as_str())
        );
        assert_eq!(
            header(&res, "x-ratelimit-reset"),
            Some(t.to_string().as_str())
        );
        assert_eq!(
            header(&res, "retry-after"),
            None,
            "only refusals carry Retry-After"
        );
        assert_eq!(res.text().await.unwrap(), "ok");
    }

    let res = get_with(&client, addr, &[]).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), Some("10"));
    assert_eq!(header(&res, "ratelimit"), Some(r#""per-ip";r=0;t=30"#));
    assert_eq!(
        header(&res, "ratelimit-policy"),
        Some(r#""per-ip";q=3;w=30"#)
    );
    assert_eq!(header(&res, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(res.text().await.unwrap(), "Too Many Requests\n");

    // 9.5 s later the wait left is 0.5 s: Retry-After rounds up to 1, never 0.
    clock.advance(Duration::from_millis(9_500));
    let res = get_with(&client, addr, &[]).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), Some("1"));

    // Honouring Retry-After gets the request through.
    clock.advance(Duration::from_secs(1));
    let res = get_with(&client, addr, &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "ratelimit"), Some(r#""per-ip";r=0;t=30"#));
}

#[tokio::test]
async fn each_client_ip_has_its_own_bucket() {
    let (limiter, _clock) = new_limiter::<IpAddr>(1);
    let addr = serve(app().layer(HttpRateLimitLayer::new(ClientIp::peer(), limiter.clone()))).await;
    let (a, b) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    assert_eq!(get_with(&a, addr, &[]).await.status(), 200);
    assert_eq!(get_with(&a, addr, &[]).await.status(), 429);
    assert_eq!(
        get_with(&b, addr, &[]).await.status(),
        200,
        "another IP, another bucket"
    );
    assert_eq!(get_with(&b, addr, &[]).await.status(), 429);
    assert_eq!(limiter.len(), 2);
}

#[tokio::test]
async fn spoofed_forwarding_headers_are_ignored_without_trusted_proxies() {
    let (limiter, _clock) = new_limiter::<IpAddr>(2);
    for extractor in [
        ClientIp::peer(),
        ClientIp::x_forwarded_for(0),
        ClientIp::forwarded(0),
    ] {
        let addr = serve(app().layer(HttpRateLimitLayer::new(extractor, limiter.clone()))).await;
        let client = client_from("127.0.0.3");
        let mut statuses = Vec::new();
        for i in 0..3 {
            let spoof = format!("10.9.9.{i}");
            let fwd = format!("for={spoof}");
            let res = get_with(
                &client,
                addr,
                &[("x-forwarded-for", &spoof), ("forwarded", &fwd)],
            )
            .await;
            statuses.push(res.status().as_u16());
        }
        assert_eq!(
            statuses,
            [200, 200, 429],
            "every spoofed address lands in the peer's bucket"
        );
        assert_eq!(limiter.len(), 1);
        assert!(limiter.decide_key(&"127.0.0.3".parse().unwrap(), 0).is_ok());
        // The next extractor starts from an empty bucket for this peer.
        limiter.sweep();
        _clock.advance(Duration::from_secs(60));
        limiter.sweep();
    }
}

#[tokio::test]
async fn one_trusted_proxy_takes_the_rightmost_address() {
    let (limiter, _clock) = new_limiter::<IpAddr>(3);
    let addr = serve(app().layer(HttpRateLimitLayer::new(
        ClientIp::x_forwarded_for(1),
        limiter.clone(),
    )))
    .await;
    let client = client_from("127.0.0.1");
    // The client wrote the left part; our proxy appended the address it saw.
    for spoof in ["6.6.6.6", "7.7.7.7, 8.8.8.8"] {
        let xff = format!("{spoof}, 203.0.113.7");
        assert_eq!(
            get_with(&client, addr, &[("x-forwarded-for", &xff)])
                .await
                .status(),
            200
        );
    }
    let real: IpAddr = "203.0.113.7".parse().unwrap();
    assert_eq!(
        remaining(&limiter, &real),
        1,
        "both requests count for the real client"
    );
    for spoofed in ["6.6.6.6", "7.7.7.7", "8.8.8.8"] {
        assert_eq!(remaining(&limiter, &spoofed.parse().unwrap()), 3);
    }
    // Over two header lines, the last line's last entry is the proxy's.
    let res = client
        .get(format!("http://{addr}/"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(remaining(&limiter, &"198.51.100.1".parse().unwrap()), 2);
    // No header, or garbage where the proxy's entry should be: the peer address, never a
    // client-chosen one.
    get_with(&client, addr, &[]).await;
    get_with(&client, addr, &[("x-forwarded-for", "1.1.1.1, garbage")]).await;
    assert_eq!(remaining(&limiter, &"127.0.0.1".parse().unwrap()), 1);
    assert_eq!(remaining(&limiter, &"1.1.1.1".parse().unwrap()), 3);
}

#[tokio::test]
async fn forwarded_header_with_quoted_ipv6_and_port() {
    let (limiter, _clock) = new_limiter::<IpAddr>(3);
    let addr = serve(app().layer(HttpRateLimitLayer::new(
        ClientIp::forwarded(1),
        limiter.clone(),
    )))
    .await;
    let client = client_from("127.0.0.1");
    let fwd =
        r#"for=6.6.6.6;proto=https, for="[2001:db8:cafe::17]:4711";proto=http;by=203.0.113.43"#;
    assert_eq!(
        get_with(&client, addr, &[("forwarded", fwd)])
            .await
            .status(),
        200
    );
    // Another address of the same /64 shares the bucket.
    let fwd2 = r#"For="[2001:db8:cafe:0:1234::9]""#;
    assert_eq!(
        get_with(&client, addr, &[("forwarded", fwd2)])
            .await
            .status(),
        200
    );
    let group: IpAddr = "2001:db8:cafe::".parse().unwrap();
    assert_eq!(remaining(&limiter, &group), 1);
    assert_eq!(remaining(&limiter, &"6.6.6.6".parse().unwrap()), 3);
    // An obfuscated node is no address: the peer's bucket.
    get_with(&client, addr, &[("forwarded", "for=_hidden")]).await;
    assert_eq!(remaining(&limiter, &"127.0.0.1".parse().unwrap()), 2);
}

#[tokio::test]
async fn header_key_and_missing_key_answers() {
    let (limiter, _clock) = new_limiter::<String>(1);
    let by_key = HeaderKey::new(axum::http::HeaderName::from_static("x-api-key"));
    let addr = serve(app().layer(HttpRateLimitLayer::new(by_key.clone(), limiter.clone()))).await;
    let client = client_from("127.0.0.1");
    assert_eq!(
        get_with(&client, addr, &[("x-api-key", "alice")])
            .await
            .status(),
        200
    );
    assert_eq!(
        get_with(&client, addr, &[("x-api-key", "alice")])
            .await
            .status(),
        429
    );
    assert_eq!(
        get_with(&client, addr, &[("x-api-key", "bob")])
            .await
            .status(),
        200
    );
    // No key: 400 by default, and nothing is tracked for it.
    let res = get_with(&client, addr, &[]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(header(&res, "ratelimit"), None);
    assert_eq!(limiter.len(), 2);

    // Or one shared bucket for every keyless request.
    let (shared, _clock) = new_limiter::<String>(2);
    let layer = HttpRateLimitLayer::builder(by_key, shared.clone())
        .on_missing_key(MissingKey::Shared("anonymous".to_owned()))
        .build()
        .unwrap();
    let addr = serve(app().layer(layer)).await;
    let statuses: Vec<u16> = futures_util::future::join_all(
        (0..3).map(|_| async { get_with(&client, addr, &[]).await.status().as_u16() }),
    )
    .await;
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 200, 429], "{statuses:?}");
    assert_eq!(remaining(&shared, &"anonymous".to_owned()), 0);
}

#[tokio::test]
async fn closure_key_and_cost() {
    let (limiter, _clock) = new_limiter::<String>(4);
    // Per tenant, from the path; uploads cost 3 tokens.
    let tenant = key_fn(|req: &axum::http::Request<Body>| {
        req.uri()
            .path()
            .split('/')
            .nth(1)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    });
    let layer = HttpRateLimitLayer::builder(tenant, limiter.clone())
        .cost(|req: &axum::http::Request<Body>| {
            if req.uri().path().ends_with("/upload") {
                3
            } else {
                1
            }
        })
        .build()
        .unwrap();
    let app = Router::new()
        .route("/{tenant}", get(|| async { "ok" }))
        .route("/{tenant}/upload", get(|| async { "up" }))
        .layer(layer);
    let addr = serve(app).await;
    let client = client_from("127.0.0.1");
    let at = |p: &str| format!("http://{addr}{p}");
    assert_eq!(
        client
            .get(at("/acme/upload"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(client.get(at("/acme")).send().await.unwrap().status(), 200);
    let res = client.get(at("/acme/upload")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(
        header(&res, "retry-after"),
        Some("30"),
        "three tokens take 30 s to come back"
    );
    assert_eq!(
        client
            .get(at("/globex/upload"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client.get(at("/")).send().await.unwrap().status(),
        400,
        "no tenant, no key"
    );
}

#[tokio::test]
async fn a_cost_above_the_burst_is_refused_without_retry_after() {
    let (limiter, _clock) = new_limiter::<IpAddr>(2);
    let layer = HttpRateLimitLayer::builder(ClientIp::peer(), limiter)
        .cost(|_: &axum::http::Request<Body>| 5)
        .build()
        .unwrap();
    let addr = serve(app().layer(layer)).await;
    let res = get_with(&client_from("127.0.0.1"), addr, &[]).await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        header(&res, "retry-after"),
        None,
        "waiting would never help"
    );
}

#[tokio::test]
async fn invalid_policy_names_are_refused_at_build() {
    let (limiter, _clock) = new_limiter::<IpAddr>(2);
    let err = HttpRateLimitLayer::builder(ClientIp::peer(), limiter)
        .policy_name("bad\"name")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("policy_name"), "{err}");
}

async fn redis_client(server: &RedisServer) -> RedisClient {
    let config = RedisConfig::builder()
        .port(server.port())
        .key_prefix("http")
        .response_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    RedisClient::connect(config).await.unwrap()
}

async fn redis_limiter(server: &RedisServer, policy: FailurePolicy) -> RedisRateLimiter {
    RedisRateLimiter::builder(redis_client(server).await, "http-per-ip")
        .capacity(3)
        .refill_per_sec(3.0 / 60.0)
        .failure_policy(policy)
        .build()
        .unwrap()
}

#[tokio::test]
async fn redis_backend_is_shared_by_replicas() {
    let server = RedisServer::start();
    // Two replicas: two servers, two layers, two connections, one Redis.
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let limiter = redis_limiter(&server, FailurePolicy::FailClosed).await;
        let layer = HttpRateLimitLayer::builder(ClientIp::peer(), limiter)
            .policy_name("per-ip")
            .build()
            .unwrap();
        replicas.push(serve(app().layer(layer)).await);
    }
    let client = client_from("127.0.0.1");
    let first = get_with(&client, replicas[0], &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        header(&first, "ratelimit-policy"),
        Some(r#""per-ip";q=3;w=60"#)
    );
    assert_eq!(header(&first, "ratelimit"), Some(r#""per-ip";r=2;t=20"#));
    assert_eq!(get_with(&client, replicas[1], &[]).await.status(), 200);
    assert_eq!(get_with(&client, replicas[0], &[]).await.status(), 200);
    let res = get_with(&client, replicas[1], &[]).await;
    assert_eq!(res.status(), 429, "the replicas share one bucket");
    let retry: u64 = header(&res, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // Another client IP is not affected.
    assert_eq!(
        get_with(&client_from("127.0.0.2"), replicas[1], &[])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn redis_down_fails_open_or_closed_as_configured() {
    let mut server = RedisServer::start();
    let open = HttpRateLimitLayer::new(
        ClientIp::peer(),
        redis_limiter(&server, FailurePolicy::FailOpen).await,
    );
    let closed = HttpRateLimitLayer::new(
        ClientIp::peer(),
        redis_limiter(&server, FailurePolicy::FailClosed).await,
    );
    let (open, closed) = (
        serve(app().layer(open)).await,
        serve(app().layer(closed)).await,
    );
    let client = client_from("127.0.0.1");
    assert_eq!(get_with(&client, open, &[]).await.status(), 200);
    assert_eq!(get_with(&client, closed, &[]).await.status(), 200);

    server.stop();
    let res = get_with(&client, open, &[]).await;
    assert_eq!(res.status(), 200, "fail open admits");
    assert_eq!(res.text().await.unwrap(), "ok");
    let res = get_with(&client, closed, &[]).await;
    assert_eq!(res.status(), 503, "fail closed answers 503");
    assert_eq!(header(&res, "retry-after"), None);
    let body = res.text().await.unwrap();
    assert_eq!(
        body, "Service Unavailable\n",
        "no backend detail in the body"
    );
}
