//! Per-request overhead of the keyed HTTP rate-limit layer, ours beside tower-governor 0.8, over
//! the same trivial inner service: `cargo bench --bench http_limit`.
//!
//! Both limit by client IP from axum's `ConnectInfo<SocketAddr>`, cycling through 1 000 client
//! addresses, with quotas that admit every request (a burst of 10^9, one token per second back,
//! so every key's bucket stays in use and no key is evicted). Each iteration builds the request
//! (same for all), `poll_ready` + `call` + one poll, and drops the response.
//!
//! The machine is shared and its load drifts between benchmarks, so after criterion's figures
//! (per-request totals) a paired run times every contender in turn, round after round, and
//! prints the median overhead over the same round's bare service, and the ratios.
//!
//! Header settings: tower-governor's `use_headers()` writes `x-ratelimit-limit` and
//! `x-ratelimit-remaining`; ours writes the IETF `RateLimit-Policy` + `RateLimit` (default) or the
//! three `X-RateLimit-*` headers; "no headers" is tower-governor without `use_headers()` and
//! ours with both header sets off.

use std::convert::Infallible;
use std::future::poll_fn;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use criterion::Criterion;
use futures_util::FutureExt;
use resilience::integration::http::{ClientIp, HttpRateLimitLayer};
use resilience::rate_limit::KeyedRateLimiter;
use tower::{Layer, Service, service_fn};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

const CLIENTS: usize = 1_000;
const BURST: u32 = 1_000_000_000;

fn bare() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    service_fn(|_req: Request<Body>| std::future::ready(Ok(Response::new(Body::empty()))))
}

fn clients() -> Vec<ConnectInfo<SocketAddr>> {
    (0..CLIENTS)
        .map(|i| {
            let ip = Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8);
            ConnectInfo(SocketAddr::new(IpAddr::V4(ip), 40_000))
        })
        .collect()
}

/// `poll_ready`, `call`, one poll: the response's status and header count.
#[inline(always)]
fn drive<S>(svc: &mut S, req: Request<Body>) -> Option<(u16, usize)>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    poll_fn(|cx| svc.poll_ready(cx)).now_or_never()?.ok()?;
    let res = svc.call(req).now_or_never()?.ok()?;
    Some((res.status().as_u16(), res.headers().len()))
}

fn request(clients: &[ConnectInfo<SocketAddr>], i: usize) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    req.extensions_mut().insert(clients[i % clients.len()]);
    req
}

/// One contender: a service driven through `drive`, behind one call signature.
type Runner = Box<dyn FnMut(usize) -> Option<(u16, usize)>>;

fn runner<S>(mut svc: S) -> Runner
where
    S: Service<Request<Body>, Response = Response<Body>> + 'static,
{
    let clients = clients();
    Box::new(move |i| drive(&mut svc, request(&clients, i)))
}

fn ours(ietf: bool, legacy: bool) -> HttpRateLimitLayer<ClientIp, Arc<KeyedRateLimiter<IpAddr>>> {
    let limiter = KeyedRateLimiter::builder()
        .per_second(1)
        .burst(BURST)
        .build()
        .unwrap();
    HttpRateLimitLayer::builder(ClientIp::peer(), Arc::new(limiter))
        .ietf_headers(ietf)
        .x_ratelimit_headers(legacy)
        .build()
        .unwrap()
}

/// `(name, headers each response carries, runner)`; `bare` first.
fn contenders() -> Vec<(&'static str, usize, Runner)> {
    let governor = |headers: bool| {
        let mut config = GovernorConfigBuilder::default();
        config.per_second(1).burst_size(BURST);
        if headers {
            runner(GovernorLayer::new(config.use_headers().finish().unwrap()).layer(bare()))
        } else {
            runner(GovernorLayer::new(config.finish().unwrap()).layer(bare()))
        }
    };
    vec![
        ("bare", 0, runner(bare())),
        (
            "headers/ours_ietf",
            2,
            runner(ours(true, false).layer(bare())),
        ),
        (
            "headers/ours_x_ratelimit",
            3,
            runner(ours(false, true).layer(bare())),
        ),
        ("headers/tower_governor", 2, governor(true)),
        (
            "no_headers/ours",
            0,
            runner(ours(false, false).layer(bare())),
        ),
        ("no_headers/tower_governor", 0, governor(false)),
        // The limiters alone, called from the bare service: the floor under each layer.
        ("limiter_only/ours", 0, {
            let limiter = KeyedRateLimiter::<IpAddr>::builder()
                .per_second(1)
                .burst(BURST)
                .build()
                .unwrap();
            let extractor = ClientIp::peer();
            runner(service_fn(move |req: Request<Body>| {
                let ok = extractor
                    .client_ip(&req)
                    .is_some_and(|ip| limiter.check_key(&ip).is_ok());
                assert!(ok);
                std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty())))
            }))
        }),
        ("limiter_only/governor", 0, {
            let quota = governor::Quota::per_second(std::num::NonZeroU32::MIN)
                .allow_burst(std::num::NonZeroU32::new(BURST).unwrap());
            let limiter = governor::RateLimiter::<IpAddr, _, _>::dashmap(quota);
            runner(service_fn(move |req: Request<Body>| {
                let ip = req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip());
                let ok = ip.is_some_and(|ip| limiter.check_key(&ip).is_ok());
                assert!(ok);
                std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty())))
            }))
        }),
        // The bare service again: the noise floor of the paired figures.
        ("bare_again", 0, runner(bare())),
    ]
}

/// Warms every key and checks the answer is what is measured: 200 with the headers.
fn warm(name: &str, headers: usize, run: &mut Runner) {
    for i in 0..CLIENTS {
        assert_eq!(run(i), Some((200, headers)), "{name}");
    }
}

fn http_limit(c: &mut Criterion) {
    for (name, headers, mut run) in contenders() {
        warm(name, headers, &mut run);
        let mut i = 0;
        c.bench_function(&format!("http_limit/{name}"), |b| {
            b.iter(|| {
                i += 1;
                black_box(run(black_box(i)))
            });
        });
    }
}

const ROUNDS: usize = 60;
const PER_ROUND: usize = 10_000;

/// Overheads measured under the same load: every round times each contender over `PER_ROUND`
/// requests, one after the other, and subtracts the same round's `bare`; the median over the
/// rounds is printed, with the ratios ours / tower-governor.
fn paired() {
    let mut all = contenders();
    for (name, headers, run) in &mut all {
        warm(name, *headers, run);
    }
    let mut overheads = vec![Vec::with_capacity(ROUNDS); all.len()];
    let mut i = 0;
    for _ in 0..ROUNDS {
        let mut per_request = Vec::with_capacity(all.len());
        for (_, _, run) in &mut all {
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                i += 1;
                black_box(run(black_box(i)));
            }
            per_request.push(start.elapsed().as_secs_f64() * 1e9 / PER_ROUND as f64);
        }
        for (k, t) in per_request.iter().enumerate() {
            overheads[k].push(t - per_request[0]);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let med: Vec<f64> = overheads.iter_mut().map(median).collect();
    println!("\nPaired overhead per request over bare (median of {ROUNDS} rounds of {PER_ROUND}):");
    for ((name, _, _), m) in all.iter().zip(&med) {
        println!("  {name:<28} {m:>8.1} ns");
    }
    let ratio = |a: usize, b: usize| med[a] / med[b];
    println!(
        "  ratio ours_ietf / governor (headers): {:.2}; ours_x_ratelimit / governor: {:.2}; ours / governor (no headers): {:.2}",
        ratio(1, 3),
        ratio(2, 3),
        ratio(4, 5)
    );
    println!("  ratio limiter_only ours / governor: {:.2}", ratio(6, 7));
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    http_limit(&mut c);
    c.final_summary();
    paired();
}
