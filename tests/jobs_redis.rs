//! The Redis backend of `jobs` (bullmq-official) against a real redis-server: add and process,
//! ordering, bulk, idempotent ids, pause, retention, close, the oldest waiting job, concurrency
//! and the rate limit. Retries and failures are in `jobs_redis_retry.rs`; connecting
//! (credentials, TLS, Sentinel, Cluster, unreachable servers, idle CPU) in
//! `jobs_redis_connect.rs`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilience::jobs::{
    BackendKind, Handler, JobOptions, JobPriority, JobState, QueueError, Retention,
};
use serde_json::json;
use support::jobs::*;
use support::{RedisServer, poll_until};

#[tokio::test]
async fn add_process_and_result_stored() {
    let server = RedisServer::start();
    let q = queue(&server, "emails").await;
    assert_eq!(q.backend_kind(), BackendKind::Redis);
    let id = q
        .add("welcome", &json!({ "user": 42 }), JobOptions::new())
        .await
        .unwrap();
    // Our key prefix `t` gives the BullMQ prefix `t/jobs`.
    assert_eq!(server.cli(&["EXISTS", &format!("t/jobs:emails:{id}")]), "1");
    let w = builder(&q)
        .handle("welcome", |p: serde_json::Value| async move {
            Ok::<_, TestError>(json!({ "sent_to": p["user"] }))
        })
        .start()
        .await
        .unwrap();
    let info = until_state(&q, &id, JobState::Completed).await;
    assert_eq!(info.result, Some(json!({ "sent_to": 42 })));
    assert_eq!(info.data, json!({ "user": 42 }));
    assert_eq!(info.attempts_made, 1);
    assert_eq!(info.priority, 3, "normal is the default");
    assert_eq!(info.name, "welcome");
    assert!(info.timestamp_ms > 1_600_000_000_000);
    assert_eq!(q.counts().await.unwrap().completed, 1);
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(q.job("nope").await.unwrap(), None);
}

#[tokio::test]
async fn priority_then_delay_ordering() {
    let server = RedisServer::start();
    let q = queue(&server, "ordered").await;
    for (name, p) in [
        ("low", JobPriority::Low),
        ("critical", JobPriority::Critical),
        ("normal", JobPriority::Normal),
        ("unprioritized", JobPriority::Level(0)),
        ("high", JobPriority::High),
    ] {
        q.add("job", &name, JobOptions::new().priority(p))
            .await
            .unwrap();
    }
    let added = Instant::now();
    q.add(
        "job",
        &"later",
        JobOptions::new().delay(Duration::from_millis(900)),
    )
    .await
    .unwrap();
    q.add(
        "job",
        &"sooner",
        JobOptions::new().delay(Duration::from_millis(400)),
    )
    .await
    .unwrap();
    assert_eq!(q.counts().await.unwrap().delayed, 2);
    let order = Arc::new(Mutex::new(Vec::<(String, Duration)>::new()));
    let seen = order.clone();
    let w = builder(&q)
        .handle("job", move |name: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((name, added.elapsed()));
                Ok::<_, TestError>(())
            }
        })
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || {
        (order.lock().unwrap().len() == 7).then_some(())
    })
    .await
    .expect("all seven processed");
    w.close(Duration::from_secs(5)).await.unwrap();
    let order = order.lock().unwrap().clone();
    let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "unprioritized",
            "critical",
            "high",
            "normal",
            "low",
            "sooner",
            "later"
        ]
    );
    assert!(order[5].1 >= Duration::from_millis(400), "{order:?}");
    assert!(order[6].1 >= Duration::from_millis(900), "{order:?}");
}

#[tokio::test]
async fn bulk_add_and_idempotent_ids() {
    let server = RedisServer::start();
    let q = queue(&server, "bulk").await;
    let ids = q
        .add_bulk((0..50u32).map(|i| ("n", i, JobOptions::new())))
        .await
        .unwrap();
    assert_eq!(ids.len(), 50);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 50);
    assert_eq!(q.counts().await.unwrap().waiting, 50);

    // Adding an existing id keeps the one job (its first payload) and returns its id.
    let first = q
        .add("n", &1000u32, JobOptions::new().job_id("welcome-42"))
        .await
        .unwrap();
    let again = q
        .add("n", &2000u32, JobOptions::new().job_id("welcome-42"))
        .await
        .unwrap();
    assert_eq!(
        (first.as_str(), again.as_str()),
        ("welcome-42", "welcome-42")
    );
    let bulk_again = q
        .add_bulk([("n", 3000u32, JobOptions::new().job_id("welcome-42"))])
        .await
        .unwrap();
    assert_eq!(bulk_again, ["welcome-42"]);
    assert_eq!(q.counts().await.unwrap().waiting, 51);
    assert_eq!(
        q.job("welcome-42").await.unwrap().unwrap().data,
        json!(1000)
    );

    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = runs.clone();
    let w = builder(&q)
        .handle("n", move |n: u32| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(n);
                Ok::<_, TestError>(n)
            }
        })
        .concurrency(8)
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || {
        (q.counts().await.unwrap().completed == 51).then_some(())
    })
    .await
    .expect("all processed");
    // Completed and kept: adding the id again neither adds nor re-runs it.
    let after = q
        .add("n", &4000u32, JobOptions::new().job_id("welcome-42"))
        .await
        .unwrap();
    assert_eq!(after, "welcome-42");
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 51, "each job ran once");
    assert_eq!(runs.iter().filter(|n| **n >= 1000).count(), 1);
}

#[tokio::test]
async fn pause_and_resume_the_queue_and_a_worker() {
    let server = RedisServer::start();
    let q = queue(&server, "paused").await;
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, TestError>(n) })
        .start()
        .await
        .unwrap();
    q.pause().await.unwrap();
    let a = q.add("n", &1u32, JobOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(q.job(&a).await.unwrap().unwrap().state, JobState::Waiting);
    assert_eq!(
        q.counts().await.unwrap().waiting,
        1,
        "paused jobs count as waiting"
    );
    q.resume().await.unwrap();
    until_state(&q, &a, JobState::Completed).await;

    w.pause();
    // Let the worker's fetch loop see the flag (it may be in its blocking read).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = q.add("n", &2u32, JobOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(q.job(&b).await.unwrap().unwrap().state, JobState::Waiting);
    w.resume();
    until_state(&q, &b, JobState::Completed).await;
    w.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn retention_removes_finished_jobs() {
    let server = RedisServer::start();
    let q = queue(&server, "retention").await;
    let gone = q
        .add(
            "ok",
            &(),
            JobOptions::new().remove_on_complete(Retention::RemoveAll),
        )
        .await
        .unwrap();
    let keep_two = JobOptions::new().remove_on_complete(Retention::count(2));
    for _ in 0..4 {
        q.add("ok", &(), keep_two.clone()).await.unwrap();
    }
    let fail_opts = JobOptions::new()
        .retry(fixed(1, Duration::from_millis(1)))
        .remove_on_fail(Retention::count(1));
    for _ in 0..3 {
        q.add("bad", &(), fail_opts.clone()).await.unwrap();
    }
    let w = builder(&q)
        .handle("ok", |(): ()| async move { Ok::<_, TestError>(()) })
        .handle("bad", |(): ()| async move {
            Err::<(), _>(TestError::transient("no"))
        })
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || {
        let c = q.counts().await.unwrap();
        (c.waiting == 0 && c.active == 0).then_some(())
    })
    .await
    .expect("all processed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(q.job(&gone).await.unwrap(), None);
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.failed), (2, 1));
}

#[tokio::test]
async fn close_timeout_leaves_the_job_active_for_another_worker() {
    let server = RedisServer::start();
    let q = queue(&server, "handover").await;
    let id = q.add("long", &(), JobOptions::new()).await.unwrap();
    let runs = Arc::new(Mutex::new(0u32));
    let counter = runs.clone();
    let handler = move || {
        let counter = counter.clone();
        Handler::new("long", move |(): ()| {
            let counter = counter.clone();
            async move {
                let first = {
                    let mut r = counter.lock().unwrap();
                    *r += 1;
                    *r == 1
                };
                if first {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Ok::<_, TestError>("finished")
            }
        })
    };
    let first = builder(&q)
        .handler(handler())
        .lock_duration(Duration::from_millis(800))
        .start()
        .await
        .unwrap();
    until_state(&q, &id, JobState::Active).await;
    poll_until(WAIT, async || (first.in_flight() == 1).then_some(()))
        .await
        .unwrap();
    let started = Instant::now();
    let e = first.close(Duration::from_millis(300)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(e, QueueError::CloseTimeout { in_flight: 1, .. }),
        "{e:?}"
    );
    // Left active, not failed or retried.
    let info = q.job(&id).await.unwrap().unwrap();
    assert_eq!((info.state, info.attempts_made), (JobState::Active, 0));
    let second = builder(&q)
        .handler(handler())
        .stalled_interval(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let info = until_state(&q, &id, JobState::Completed).await;
    second.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(info.result, Some(json!("finished")));
    assert_eq!(*runs.lock().unwrap(), 2);
}

#[tokio::test]
async fn close_waits_for_in_flight_jobs() {
    let server = RedisServer::start();
    let q = queue(&server, "drain").await;
    let id = q.add("short", &(), JobOptions::new()).await.unwrap();
    let w = builder(&q)
        .handle("short", |(): ()| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok::<_, TestError>(1)
        })
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || (w.in_flight() == 1).then_some(()))
        .await
        .unwrap();
    let started = Instant::now();
    w.close(Duration::from_secs(5)).await.unwrap();
    // Done once the job was, not after bullmq's blocking read (10 s drain delay).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        q.job(&id).await.unwrap().unwrap().state,
        JobState::Completed
    );
    // A closed worker takes nothing more.
    let next = q.add("short", &(), JobOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        q.job(&next).await.unwrap().unwrap().state,
        JobState::Waiting
    );
}

#[tokio::test]
async fn oldest_waiting_age_reads_the_next_job() {
    let server = RedisServer::start();
    let q = queue(&server, "age").await;
    assert_eq!(q.oldest_waiting_age().await.unwrap(), None);
    q.add(
        "n",
        &1u32,
        JobOptions::new().priority(JobPriority::Level(0)),
    )
    .await
    .unwrap();
    q.add("n", &2u32, JobOptions::new().priority(JobPriority::Low))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let age = q.oldest_waiting_age().await.unwrap().unwrap();
    assert!(
        age >= Duration::from_millis(290) && age < Duration::from_secs(5),
        "{age:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_and_the_queue_wide_rate_limit() {
    let server = RedisServer::start();
    let q = queue(&server, "conc").await;
    q.add_bulk((0..4u32).map(|i| ("slow", i, JobOptions::new())))
        .await
        .unwrap();
    let peak = Arc::new(Mutex::new((0usize, 0usize)));
    let seen = peak.clone();
    let started = Instant::now();
    let w = builder(&q)
        .handle("slow", move |_: u32| {
            let seen = seen.clone();
            async move {
                {
                    let mut p = seen.lock().unwrap();
                    p.0 += 1;
                    p.1 = p.1.max(p.0);
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
                seen.lock().unwrap().0 -= 1;
                Ok::<_, TestError>(())
            }
        })
        .concurrency(4)
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || {
        (q.counts().await.unwrap().completed == 4).then_some(())
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(peak.lock().unwrap().1, 4, "four at once");
    w.close(Duration::from_secs(5)).await.unwrap();

    // At most 2 jobs start per 500 ms, across the queue's workers.
    let limited = queue(&server, "limited").await;
    limited
        .add_bulk((0..6u32).map(|i| ("n", i, JobOptions::new())))
        .await
        .unwrap();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let seen = starts.clone();
        workers.push(
            builder(&limited)
                .handle("n", move |_: u32| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(Instant::now());
                        Ok::<_, TestError>(())
                    }
                })
                .concurrency(4)
                .rate_limit(2, Duration::from_millis(500))
                .start()
                .await
                .unwrap(),
        );
    }
    poll_until(WAIT, async || {
        (limited.counts().await.unwrap().completed == 6).then_some(())
    })
    .await
    .unwrap();
    for w in workers {
        w.close(Duration::from_secs(5)).await.unwrap();
    }
    let mut s = starts.lock().unwrap().clone();
    s.sort();
    // Six starts at two per window span at least two further windows.
    let span = s[5] - s[0];
    assert!(span >= Duration::from_millis(950), "{span:?}");
    for w in s.windows(3) {
        assert!(w[2] - w[0] >= Duration::from_millis(450), "{s:?}");
    }
}

#[tokio::test]
async fn hostile_queue_and_job_names_are_refused_typed_or_round_trip() {
    let server = RedisServer::start();
    let cfg = config(server.port());
    let jobs = queue(&server, "hostile").await;
    for name in support::hostile_names() {
        // A queue name: accepted (and usable) or a typed configuration error, nothing else.
        match resilience::jobs::Queue::redis(&name, &cfg).await {
            Ok(q) => {
                let id = q.add("n", &1u32, JobOptions::new()).await.unwrap();
                assert_eq!(
                    q.job(&id).await.unwrap().unwrap().name,
                    "n",
                    "queue {name:?}"
                );
            }
            Err(QueueError::Config(e)) => assert_eq!(e.field, "queue", "{name:?}"),
            Err(e) => panic!("queue {name:?}: unexpected {e:?}"),
        }
        // A job name: stored as given, or refused typed.
        match jobs
            .add(&name, &json!({ "k": name }), JobOptions::new())
            .await
        {
            Ok(id) => {
                let job = jobs.job(&id).await.unwrap().unwrap();
                assert_eq!(
                    (job.name.as_str(), &job.data),
                    (name.as_str(), &json!({ "k": name }))
                );
            }
            Err(QueueError::Config(e)) => assert_eq!(e.field, "name", "{name:?}"),
            Err(e) => panic!("job {name:?}: unexpected {e:?}"),
        }
    }
    // Nothing escaped the queue's keys: every key is under the BullMQ prefix `t/jobs`.
    let keys = server.cli(&["--raw", "KEYS", "*"]);
    assert!(
        keys.lines()
            .all(|k| k.is_empty() || k.starts_with("t/jobs:")),
        "{keys}"
    );
}
