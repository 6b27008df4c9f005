//! How the Redis backend of `jobs` connects, against real servers: ACL users and `requirepass`,
//! mutual TLS, Sentinel, a Cluster, unreachable and silent servers (typed errors within the
//! timeout), the memory fallback, the BullMQ prefix, and an idle worker's CPU.

mod support;

use std::fmt;
use std::time::{Duration, Instant};

use resilience::Retryable;
use resilience::jobs::redis::RedisJobsConfig;
use resilience::jobs::{BackendKind, JobOptions, JobState, MemoryBroker, Queue, QueueError};
use resilience::redis::{RedisConfig, RedisError};
use serde_json::json;
use support::jobs::*;
use support::{RedisServer, poll_until};

/// Handlers here never fail.
#[derive(Debug)]
struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("never")
    }
}

impl Retryable for Never {
    fn is_retryable(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn acl_user_and_requirepass_work_and_a_wrong_password_is_typed() {
    let acl = RedisServer::builder().acl_user("app", "s3cret-acl").start();
    let cfg = RedisConfig::builder()
        .port(acl.port())
        .username("app")
        .password("s3cret-acl")
        .build()
        .unwrap();
    let q = Queue::redis("acl", &cfg).await.unwrap();
    let id = q.add("n", &5u32, JobOptions::new()).await.unwrap();
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, Never>(n + 1) })
        .start()
        .await
        .unwrap();
    assert_eq!(
        until_state(&q, &id, JobState::Completed).await.result,
        Some(json!(6))
    );
    w.close(Duration::from_secs(5)).await.unwrap();

    let pass = RedisServer::builder().password("s3cret-pass").start();
    let cfg = RedisConfig::builder()
        .port(pass.port())
        .password("s3cret-pass")
        .build()
        .unwrap();
    let q = Queue::redis("pass", &cfg).await.unwrap();
    q.add("n", &1u32, JobOptions::new()).await.unwrap();
    assert_eq!(q.counts().await.unwrap().waiting, 1);

    for (port, user) in [(acl.port(), Some("app")), (pass.port(), None)] {
        let mut b = RedisConfig::builder()
            .port(port)
            .password("wrong-hunter2")
            .connect_timeout(Duration::from_secs(2));
        if let Some(u) = user {
            b = b.username(u);
        }
        let e = Queue::redis("x", &b.build().unwrap()).await.unwrap_err();
        assert!(
            matches!(e, QueueError::Redis(RedisError::Auth { .. })),
            "{e:?}"
        );
        assert!(!e.to_string().contains("wrong-hunter2"), "{e}");
        assert!(!format!("{e:?}").contains("wrong-hunter2"), "{e:?}");
    }
}

#[tokio::test]
async fn closed_port_without_fallback_errors_within_the_timeout() {
    let port = support::free_port();
    let cfg = RedisConfig::builder()
        .port(port)
        .password("hunter2")
        .connect_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = Queue::redis("down", &cfg).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(e, QueueError::Unavailable(_)), "{e:?}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[tokio::test]
async fn closed_port_with_fallback_runs_in_memory() {
    let port = support::free_port();
    let cfg = RedisConfig::builder()
        .port(port)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let broker = MemoryBroker::new();
    let q = Queue::connect(
        "fallback",
        RedisJobsConfig::builder(cfg)
            .fallback_to_memory(&broker)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(q.backend_kind(), BackendKind::MemoryFallback);
    q.add("n", &1u32, JobOptions::new()).await.unwrap();
    // The broker holds it: a queue of the same name on it sees the job.
    let same = Queue::in_memory("fallback", &broker).unwrap();
    assert_eq!(same.counts().await.unwrap().waiting, 1);
}

#[tokio::test]
async fn bullmq_prefix_override_and_config_errors() {
    let server = RedisServer::start();
    let cfg = RedisJobsConfig::builder(config(server.port()))
        .bullmq_prefix("bull")
        .build()
        .unwrap();
    let q = Queue::connect("shared", cfg).await.unwrap();
    let id = q.add("n", &1u32, JobOptions::new()).await.unwrap();
    assert_eq!(server.cli(&["EXISTS", &format!("bull:shared:{id}")]), "1");
    let e = RedisJobsConfig::builder(RedisConfig::builder().db(300).build().unwrap())
        .build()
        .unwrap_err();
    assert_eq!(e.field, "db");
    let e = Queue::redis("a:b", &config(server.port()))
        .await
        .unwrap_err();
    assert!(matches!(e, QueueError::Config(_)), "{e:?}");
}

/// CPU time used so far by this process's threads named `name*`, from `/proc` (ns).
fn cpu_ns_of_threads(name: &str) -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(name) {
            continue;
        }
        let sched = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        total += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// One idle worker (and its queue) on a runtime of its own, measured over 10 s.
#[test]
fn an_idle_worker_burns_no_cpu() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("jobs-idle")
        .enable_all()
        .build()
        .unwrap();
    let (cpu, commands) = rt.block_on(async {
        let q = queue(&server, "idle").await;
        let w = builder(&q)
            .handle("n", |n: u32| async move { Ok::<_, Never>(n) })
            .start()
            .await
            .unwrap();
        // Settle, then measure.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stats = |s: &RedisServer| {
            s.cli(&["INFO", "stats"])
                .lines()
                .find_map(|l| l.strip_prefix("total_commands_processed:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let before = (cpu_ns_of_threads("jobs-idle"), stats(&server));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = (cpu_ns_of_threads("jobs-idle"), stats(&server));
        w.close(Duration::from_secs(5)).await.unwrap();
        (after.0 - before.0, after.1 - before.1)
    });
    println!(
        "idle worker over 10 s: {:.3} ms CPU, {} Redis commands (incl. 2 INFO)",
        cpu as f64 / 1e6,
        commands
    );
    assert!(cpu < 50_000_000, "idle worker used {cpu} ns of CPU in 10 s");
    assert!(commands < 20, "{commands} commands while idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_adds_and_processes_under_a_hash_tag() {
    let cluster = tokio::task::block_in_place(|| {
        support::cluster::RedisCluster::builder()
            .masters_only()
            .start(2000)
    });
    let seeds = cluster.seeds();
    let cfg = RedisJobsConfig::builder(config(seeds[0].1))
        .cluster(seeds.clone())
        .build()
        .unwrap();
    assert_eq!(cfg.bullmq_queue_name("emails"), "{emails}");
    let q = Queue::connect("emails", cfg).await.unwrap();
    let ids = q
        .add_bulk((0..20u32).map(|i| ("n", i, JobOptions::new())))
        .await
        .unwrap();
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, Never>(n * 2) })
        .concurrency(4)
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || {
        (q.counts().await.unwrap().completed == 20).then_some(())
    })
    .await
    .expect("all processed on the cluster");
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        q.job(&ids[3]).await.unwrap().unwrap().result,
        Some(json!(6))
    );
    // Every key of the queue lives on the master owning slot of `{emails}`.
    let (port, _) = cluster
        .master_for_key("t/jobs:{emails}:meta")
        .expect("a master for the queue's slot");
    let keys = cluster.cli(port, &["KEYS", "t/jobs:{emails}:*"]);
    assert!(keys.lines().count() > 20, "{keys}");
}

#[tokio::test]
async fn a_server_that_never_answers_errors_within_the_timeout() {
    // Accepts connections (the kernel's backlog) and never replies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = RedisConfig::builder()
        .port(silent.local_addr().unwrap().port())
        .connect_timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = Queue::redis("silent", &cfg).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(matches!(e, QueueError::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn mutual_tls_reads_the_pem_files() {
    let server = RedisServer::builder()
        .password("s3cret-tls")
        .tls_auth_clients()
        .start();
    let tls = server.tls_files().clone();
    let base = || {
        RedisConfig::builder()
            .host("localhost")
            .port(server.tls_port())
            .password("s3cret-tls")
            .tls_ca_file(&tls.ca_cert)
            .connect_timeout(Duration::from_secs(3))
    };
    let cfg = base()
        .tls_client_cert(&tls.client_cert, &tls.client_key)
        .build()
        .unwrap();
    let q = Queue::redis("tls", &cfg).await.unwrap();
    let id = q.add("n", &20u32, JobOptions::new()).await.unwrap();
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, Never>(n + 1) })
        .start()
        .await
        .unwrap();
    assert_eq!(
        until_state(&q, &id, JobState::Completed).await.result,
        Some(json!(21))
    );
    w.close(Duration::from_secs(5)).await.unwrap();
    // A client certificate from another CA is refused: typed, not a fallback case.
    let other = base()
        .tls_client_cert(&tls.other_client_cert, &tls.other_client_key)
        .build()
        .unwrap();
    let e = Queue::redis("tls", &other).await.unwrap_err();
    assert!(matches!(e, QueueError::Redis(_)), "{e:?}");
    assert!(!format!("{e:?}").contains("s3cret-tls"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_resolves_the_master() {
    use resilience::redis::SentinelOptions;
    use support::sentinel::{MASTER_NAME, SentinelSetup};
    let setup = tokio::task::block_in_place(|| SentinelSetup::start(1000));
    let cfg = RedisJobsConfig::builder(config(1))
        .sentinel(
            SentinelOptions::builder(MASTER_NAME, setup.sentinel_addrs())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let q = Queue::connect("sentinel", cfg).await.unwrap();
    let id = q.add("n", &1u32, JobOptions::new()).await.unwrap();
    // On the master the sentinels named, not on the config's (unused) port.
    let key = format!("t/jobs:sentinel:{id}");
    assert_eq!(setup.cli(setup.master_port(), &["EXISTS", &key]), "1");
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, Never>(n) })
        .start()
        .await
        .unwrap();
    until_state(&q, &id, JobState::Completed).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    // A wrong master name is an error, not a hang.
    let wrong = RedisJobsConfig::builder(config(1))
        .sentinel(
            SentinelOptions::builder("nope", setup.sentinel_addrs())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert!(Queue::connect("sentinel", wrong).await.is_err());
}
