//! Jobs on Redis with real processes (issue 11, deliverable 8): a worker process killed with
//! SIGKILL mid-job (the job runs again elsewhere once its lock lapses), Redis restarted mid-run
//! with an append-only file (no job lost), 10 000 jobs over 4 worker processes with failures
//! decided per job and attempt (every job ends as its policy says; duplicates only where a
//! process was killed), and a worker process drained by SIGTERM (its job finishes, the rest
//! wait for another worker). Worker processes re-execute this binary: see `child`.

#[path = "jobs_process/child.rs"]
mod child;
#[path = "jobs_process/load.rs"]
mod load;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use child::{
    ChildWorker, counters, get_u64, hold_handler, hold_job, open_queue, settings, tiny_delays,
};
use resilience::jobs::{JobOptions, JobState, Worker};
use resilience::redis::driver::AsyncCommands;
use resilience::shutdown::ShutdownCoordinator;
use serde_json::json;
use support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the worker process the other tests start (re-executing this binary); not a test"]
async fn child_worker() {
    child::child_main().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_process_was_killed_runs_again_on_another_worker() {
    let server = RedisServer::start();
    let mut conn = counters(&server.url()).await;
    let queue = open_queue(&server.url(), "crash").await;
    let id = queue
        .add("hold", &hold_job(60_000), JobOptions::new())
        .await
        .expect("add");
    let lock = json!({ "lock_ms": 1000, "stalled_ms": 500 });
    let mut child = ChildWorker::spawn(&server, "crash", "hold", lock.clone());
    let started = support::poll_until(Duration::from_secs(20), async || {
        (get_u64(&mut conn, &format!("runs:{id}")).await == 1).then_some(())
    })
    .await;
    assert!(
        started.is_some(),
        "the child never ran the job: {}",
        child.log()
    );
    assert_eq!(
        queue.job(&id).await.expect("job").map(|j| j.state),
        Some(JobState::Active)
    );
    child.sigkill();

    let killed_at = Instant::now();
    let takeover = settings(Worker::builder(&queue), &lock)
        .handler(hold_handler(conn.clone()))
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("start the second worker");
    let done = support::poll_until(Duration::from_secs(20), async || {
        let job = queue.job(&id).await.ok().flatten()?;
        (job.state == JobState::Completed).then_some(())
    })
    .await;
    let took = killed_at.elapsed();
    takeover.close(Duration::from_secs(5)).await.expect("close");
    let job = queue.job(&id).await.expect("job").expect("kept");
    assert!(done.is_some(), "not completed after the crash: {job:?}");
    assert_eq!(
        get_u64(&mut conn, &format!("runs:{id}")).await,
        2,
        "ran exactly twice"
    );
    let result = job.result.expect("a return value");
    assert_eq!(result["run"], 2, "{result}");
    assert_eq!(
        result["pid"],
        std::process::id(),
        "the second worker completed it"
    );
    assert!(
        took >= Duration::from_millis(500),
        "taken over before the lock could lapse ({took:?})"
    );
    eprintln!("crash: job taken over {took:?} after SIGKILL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_is_lost_when_redis_restarts_mid_run() {
    const N: usize = 300;
    let mut server = RedisServer::builder().appendonly().start();
    assert_eq!(
        server.cli(&["CONFIG", "GET", "appendonly"]),
        "appendonly\nyes"
    );
    let queue = open_queue(&server.url(), "restart").await;
    let runs: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let seen = runs.clone();
    let worker = Worker::builder(&queue)
        .handle("slow", move |n: u64| {
            let seen = seen.clone();
            async move {
                *seen.lock().expect("runs").entry(n).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok::<_, std::io::Error>(n)
            }
        })
        .concurrency(8)
        .lock_duration(Duration::from_secs(2))
        .stalled_interval(Duration::from_secs(1))
        .retry(tiny_delays())
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("start the worker");
    let ids = queue
        .add_bulk((0..N as u64).map(|n| ("slow", n, JobOptions::new().job_id(format!("r-{n}")))))
        .await
        .expect("add");

    let third = support::poll_until(Duration::from_secs(30), async || {
        let c = queue.counts().await.ok()?;
        (c.completed >= N as u64 / 3).then_some(c)
    })
    .await;
    let Some(before) = third else {
        panic!("a third never completed: {:?}", queue.counts().await);
    };
    assert!(
        before.completed < N as u64,
        "the restart must come mid-run: {before:?}"
    );
    let started = Instant::now();
    server.restart();
    eprintln!(
        "restart: at {before:?}; redis back after {:?}",
        started.elapsed()
    );

    let done = support::poll_until(Duration::from_secs(60), async || {
        let c = queue.counts().await.ok()?;
        (c.completed + c.failed == N as u64).then_some(c)
    })
    .await;
    eprintln!(
        "restart: all settled {:?} after the restart",
        started.elapsed()
    );
    let _ = worker.close(Duration::from_secs(5)).await;
    assert!(done.is_some(), "jobs missing: {:?}", queue.counts().await);
    let mut lost = Vec::new();
    for id in &ids {
        let state = queue.job(id).await.expect("job").map(|j| j.state);
        if state != Some(JobState::Completed) {
            lost.push((id.clone(), state));
        }
    }
    assert!(lost.is_empty(), "not completed after the restart: {lost:?}");
    let runs = runs.lock().expect("runs");
    let again = runs.values().filter(|&&r| r > 1).count();
    assert_eq!(runs.len(), N, "every job ran");
    eprintln!("restart: {again} job(s) ran more than once (in flight at the restart)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_over_four_worker_processes_end_as_their_policy_says() {
    let server = RedisServer::start();
    let report = load::run(&server, false).await;
    assert_eq!(report.lost, 0, "jobs lost");
    assert!(
        report.wrong.is_empty(),
        "{} job(s) ended otherwise than their policy says: {:?}",
        report.wrong.len(),
        &report.wrong[..report.wrong.len().min(20)]
    );
    assert_eq!(report.counts.failed, report.want_failed);
    assert!(
        report.duplicates.is_empty(),
        "no process died, so no job may run beyond its attempts: {:?}",
        &report.duplicates[..report.duplicates.len().min(20)]
    );
    assert_eq!(
        report.runs_per_pid.len(),
        4,
        "all 4 processes ran jobs: {:?}",
        report.runs_per_pid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_worker_process_killed_mid_run_duplicates_are_only_its_jobs() {
    let server = RedisServer::start();
    let report = load::run(&server, true).await;
    let killed = report.killed.expect("one process was killed");
    assert_eq!(report.lost, 0, "jobs lost");
    assert!(
        report.wrong.is_empty(),
        "{} job(s) ended otherwise than their policy says: {:?}",
        report.wrong.len(),
        &report.wrong[..report.wrong.len().min(20)]
    );
    assert!(
        report.runs_per_pid.get(&killed).is_some_and(|&r| r > 0),
        "the killed process had run jobs: {:?}",
        report.runs_per_pid
    );
    // At least once: a job in flight in the dead process ran again elsewhere, once.
    for (n, extra, pids) in &report.duplicates {
        assert!(
            pids.contains(&killed),
            "job {n} ran twice without a crash: {pids:?}"
        );
        assert_eq!(*extra, 1, "job {n} ran more than once again: {pids:?}");
    }
    assert!(
        report.duplicates.len() <= load::CONCURRENCY as usize,
        "more duplicates than the dead process had jobs in flight: {}",
        report.duplicates.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_worker_process_and_leaves_the_rest_waiting() {
    let server = RedisServer::start();
    let mut conn = counters(&server.url()).await;
    let queue = open_queue(&server.url(), "drain").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let opts = JobOptions::new().job_id(format!("d-{i}"));
        ids.push(queue.add("hold", &hold_job(1500), opts).await.expect("add"));
    }
    let cfg = json!({ "signals": true, "concurrency": 1 });
    let mut child = ChildWorker::spawn(&server, "drain", "hold", cfg);
    let first = support::poll_until(Duration::from_secs(20), async || {
        let started: Vec<String> = conn.lrange("started", 0, -1).await.ok()?;
        started.first().cloned()
    })
    .await
    .unwrap_or_else(|| panic!("the child never started a job: {}", child.log()));
    child.sigterm();
    let status = child.exited(Duration::from_secs(20)).await;
    let log = child.log();
    let status = status.unwrap_or_else(|| panic!("no exit within 20 s after SIGTERM: {log}"));
    assert_eq!(status.code(), Some(0), "exit code; log: {log}");

    let job = queue.job(&first).await.expect("job").expect("still stored");
    assert_eq!(
        job.state,
        JobState::Completed,
        "the running job finished: {job:?}"
    );
    let started: Vec<String> = conn.lrange("started", 0, -1).await.expect("started");
    assert_eq!(
        started,
        std::slice::from_ref(&first),
        "no other job was started"
    );
    let counts = queue.counts().await.expect("counts");
    assert_eq!((counts.waiting, counts.active), (2, 0), "{counts:?}");

    // Another worker takes the rest: not lost, not stuck active.
    let next = Worker::builder(&queue)
        .handler(hold_handler(conn.clone()))
        .concurrency(2)
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("start another worker");
    let rest = support::poll_until(Duration::from_secs(20), async || {
        (queue.counts().await.ok()?.completed == 3).then_some(())
    })
    .await;
    next.close(Duration::from_secs(5)).await.expect("close");
    assert!(
        rest.is_some(),
        "the rest did not complete: {:?}",
        queue.counts().await
    );
    for id in &ids {
        assert_eq!(
            get_u64(&mut conn, &format!("runs:{id}")).await,
            1,
            "{id} ran once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_job_outlasting_the_shutdown_timeout_leaves_it_to_another_worker() {
    let server = RedisServer::start();
    let mut conn = counters(&server.url()).await;
    let queue = open_queue(&server.url(), "cut").await;
    let id = queue
        .add("hold", &hold_job(60_000), JobOptions::new())
        .await
        .expect("add");
    let cfg = json!({ "signals": true, "lock_ms": 1000, "stalled_ms": 500, "shutdown_ms": 500 });
    let mut child = ChildWorker::spawn(&server, "cut", "hold", cfg.clone());
    let started = support::poll_until(Duration::from_secs(20), async || {
        (get_u64(&mut conn, &format!("runs:{id}")).await == 1).then_some(())
    })
    .await;
    assert!(
        started.is_some(),
        "the child never ran the job: {}",
        child.log()
    );
    child.sigterm();
    let status = child.exited(Duration::from_secs(10)).await;
    let log = child.log();
    let status = status.unwrap_or_else(|| panic!("no exit within 10 s after SIGTERM: {log}"));
    // Through the coordinator's exit (0, 1 or 124: a hook timeout is not a failure by
    // default), not killed by the signal.
    assert!(
        matches!(status.code(), Some(0 | 1 | 124)),
        "{status:?}; log: {log}"
    );
    assert_eq!(
        queue.job(&id).await.expect("job").map(|j| j.state),
        Some(JobState::Active),
        "the cut job stays active until its lock lapses"
    );

    let takeover = settings(Worker::builder(&queue), &cfg)
        .handler(hold_handler(conn.clone()))
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("start another worker");
    let done = support::poll_until(Duration::from_secs(20), async || {
        (queue.job(&id).await.ok()??.state == JobState::Completed).then_some(())
    })
    .await;
    takeover.close(Duration::from_secs(5)).await.expect("close");
    assert!(done.is_some(), "not taken over: {:?}", queue.job(&id).await);
    assert_eq!(
        get_u64(&mut conn, &format!("runs:{id}")).await,
        2,
        "ran again, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_that_outlasts_its_timeout_lets_the_job_go_while_the_process_lives() {
    let server = RedisServer::start();
    let mut conn = counters(&server.url()).await;
    let queue = open_queue(&server.url(), "giveup").await;
    let id = queue
        .add("hold", &hold_job(60_000), JobOptions::new())
        .await
        .expect("add");
    let cfg = json!({ "lock_ms": 1000, "stalled_ms": 500, "shutdown_ms": 300 });
    let coordinator = ShutdownCoordinator::new();
    let first = settings(Worker::builder(&queue), &cfg)
        .handler(hold_handler(conn.clone()))
        .shutdown(&coordinator)
        .start()
        .await
        .expect("start the worker");
    let started = support::poll_until(Duration::from_secs(20), async || {
        (get_u64(&mut conn, &format!("runs:{id}")).await == 1).then_some(())
    })
    .await;
    assert!(started.is_some(), "the job never started");
    let report = coordinator.shutdown().await;
    eprintln!(
        "giveup: {report:?}; first worker in flight {}",
        first.in_flight()
    );

    // This process lives on: the given-up job must not stay locked by it.
    let takeover = settings(Worker::builder(&queue), &cfg)
        .handler(hold_handler(conn.clone()))
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("start another worker");
    let done = support::poll_until(Duration::from_secs(10), async || {
        (queue.job(&id).await.ok()??.state == JobState::Completed).then_some(())
    })
    .await;
    takeover.close(Duration::from_secs(5)).await.expect("close");
    assert!(
        done.is_some(),
        "the job the shutdown gave up was never taken over: {:?}; runs {}",
        queue.job(&id).await,
        get_u64(&mut conn, &format!("runs:{id}")).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_read_as_it_completes_is_whole() {
    const N: u64 = 40;
    let server = RedisServer::start();
    let queue = open_queue(&server.url(), "reads").await;
    let ids = queue
        .add_bulk((0..N).map(|n| ("echo", n, JobOptions::new())))
        .await
        .expect("add");
    // One reader per job, each reading it in a loop: the first read that shows the job
    // completed is the one that raced its completion.
    let readers: Vec<_> = ids
        .iter()
        .map(|id| {
            let (queue, id) = (queue.clone(), id.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    if let Ok(Some(job)) = queue.job(&id).await
                        && job.state == JobState::Completed
                    {
                        return Some(job);
                    }
                }
                None
            })
        })
        .collect();
    let worker = Worker::builder(&queue)
        .handle("echo", |n: u64| async move {
            tokio::time::sleep(Duration::from_millis(15)).await;
            Ok::<_, std::io::Error>(n)
        })
        .concurrency(4)
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("start the worker");
    let mut torn = Vec::new();
    for reader in readers {
        let job = reader
            .await
            .expect("reader")
            .expect("completed within 20 s");
        if job.result.is_none() || job.attempts_made == 0 {
            torn.push(job);
        }
    }
    worker.close(Duration::from_secs(5)).await.expect("close");
    assert!(
        torn.is_empty(),
        "{} of {N} first reads of a completed job lacked its result or attempt: {:?}",
        torn.len(),
        torn.first()
    );
}
