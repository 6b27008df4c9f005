//! The `service` example as a real child process, driven over loopback with a minimal HTTP/1.1
//! client: endpoints, breaker, readiness during shutdown, draining, hook order, exit codes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/example.rs"]
mod example;

/// The `service` example, built once per test binary.
fn example_binary() -> PathBuf {
    example::example_binary("service")
}

struct Service {
    child: Child,
    port: u16,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Service {
    fn start(env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(example_binary());
        cmd.env("PORT", "0")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the service example");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut service = Service {
            child,
            port: 0,
            lines,
            seen: Vec::new(),
        };
        let line = service.wait_for_line(|l| l.starts_with("listening on "));
        let port = line.rsplit(':').next().unwrap().parse().unwrap();
        service.port = port;
        service
    }

    /// Waits (up to 30 s) for a stdout line matching `pred`; keeps every line in `seen`.
    fn wait_for_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no such line; saw {:?}", self.seen),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("service stdout closed; saw {:?}", self.seen)
                }
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (up to 30 s) for the process to exit, collecting the rest of its stdout.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "service did not exit; saw {:?}",
                self.seen
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn position(&self, line: &str) -> usize {
        self.seen
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line:?} not printed; saw {:?}", self.seen))
    }

    fn get(&self, path: &str) -> Response {
        get(self.port, path)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: String,
    body: String,
}

/// One `GET` over a fresh connection (`Connection: close`), read to the end.
fn get(port: u16, path: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    Response {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn endpoints_breaker_and_metrics_over_http() {
    let mut service = Service::start(&[("DRAIN_DELAY_MS", "0")]);

    let ready = service.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(json(&ready.body)["ready"], true);
    let live = service.get("/livez");
    assert_eq!(
        (live.status, json(&live.body)["live"].clone()),
        (200, true.into())
    );

    let health = service.get("/health");
    assert_eq!(health.status, 200);
    assert!(health.headers.contains("content-type: application/json"));
    let report = json(&health.body);
    assert_eq!(report["status"], "healthy");
    assert_eq!(report["shutting_down"], false);
    let names: Vec<_> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["shutdown", "circuit_breaker:upstream"]);

    let quote = service.get("/quote");
    assert_eq!((quote.status, quote.body.as_str()), (200, "42.17"));
    // The moderate preset opens after 5 consecutive failures.
    for _ in 0..5 {
        assert_eq!(service.get("/quote?fail=true").status, 502);
    }
    let rejected = service.get("/quote");
    assert_eq!(rejected.status, 503);
    assert!(
        rejected.headers.contains("retry-after: "),
        "{}",
        rejected.headers
    );

    let degraded = service.get("/health");
    assert_eq!(degraded.status, 200, "an open breaker only degrades");
    let report = json(&degraded.body);
    assert_eq!(report["status"], "degraded");
    assert_eq!(report["checks"][1]["status"], "degraded");
    // Statuses and latencies only: the breaker's message stays off the public port.
    assert!(report["checks"][1].get("message").is_none(), "{report}");
    assert!(report["checks"][1]["latency_ms"].is_number(), "{report}");
    assert_eq!(
        service.get("/readyz").status,
        200,
        "degraded is still ready"
    );

    let metrics = service.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers.contains("content-type: text/plain"));
    assert!(
        metrics
            .body
            .contains("circuit_breaker_state{name=\"upstream\"} 2"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("circuit_breaker_rejections_total"));
    assert_eq!(service.get("/nope").status, 404);

    service.signal("TERM");
    assert_eq!(service.wait_exit().code(), Some(0), "{:?}", service.seen);
}

#[test]
fn sigterm_under_load_turns_readiness_off_drains_then_runs_hooks_in_order() {
    let mut service =
        Service::start(&[("DRAIN_DELAY_MS", "1000"), ("STUCK_HOOK_TIMEOUT_MS", "300")]);
    assert_eq!(service.get("/readyz").status, 200);

    const IN_FLIGHT: usize = 4;
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (port, done) = (service.port, done.clone());
            thread::spawn(move || {
                let response = get(port, "/work?ms=2000");
                done.fetch_add(1, Ordering::SeqCst);
                response
            })
        })
        .collect();
    for _ in 0..IN_FLIGHT {
        service.wait_for_line(|l| l == "work started");
    }

    service.signal("TERM");
    // Readiness turns off at once, while the requests are still in flight.
    let mut readiness = Vec::new();
    for _ in 0..200 {
        let r = service.get("/readyz");
        readiness.push(r.status);
        if r.status == 503 {
            assert_eq!(json(&r.body)["reason"], "shutting_down");
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(readiness.last(), Some(&503), "{readiness:?}");
    assert_eq!(
        done.load(Ordering::SeqCst),
        0,
        "readiness must turn off first"
    );
    // During the drain delay the server still answers (load balancers are catching up), and
    // the liveness probe stays green while `/health` (the shutdown check) does not.
    assert_eq!(service.get("/quote").status, 200);
    assert_eq!(service.get("/livez").status, 200);
    assert_eq!(service.get("/health").status, 503);

    for worker in workers {
        let response = worker.join().unwrap();
        assert_eq!(response.status, 200, "in-flight request must finish");
        assert_eq!(response.body, "worked 2000 ms");
    }
    let status = service.wait_exit();
    assert_eq!(status.code(), Some(0), "{:?}", service.seen);

    // Every in-flight request finished before the first hook ran; hooks ran by priority.
    let last_done = service.seen.iter().rposition(|l| l == "work done").unwrap();
    let order = [
        "hook http-server",
        "hook upstream-connections",
        "hook stuck-exporter",
        "hook flush-metrics",
    ]
    .map(|l| service.position(l));
    assert!(last_done < order[0], "{:?}", service.seen);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{:?}", service.seen);
    service.position("report stuck-exporter 50 timed out after 300ms");
    service.position("report http-server 100 completed");
    service.position("report flush-metrics 25 completed");
    service.position("exit 0");
}

#[test]
fn total_timeout_exits_124() {
    let mut service = Service::start(&[
        ("DRAIN_DELAY_MS", "0"),
        ("TOTAL_TIMEOUT_MS", "1500"),
        ("STUCK_HOOK_TIMEOUT_MS", "60000"),
    ]);
    assert_eq!(service.get("/readyz").status, 200);
    service.signal("TERM");
    let status = service.wait_exit();
    assert_eq!(status.code(), Some(124), "{:?}", service.seen);
    service.position("hook stuck-exporter");
    service.position("report stuck-exporter 50 abandoned at the total timeout");
    service.position("report flush-metrics 25 abandoned at the total timeout");
    assert!(!service.seen.iter().any(|l| l == "hook flush-metrics"));
    service.position("exit 124");
}

#[test]
fn a_second_signal_forces_exit() {
    let mut service =
        Service::start(&[("DRAIN_DELAY_MS", "0"), ("STUCK_HOOK_TIMEOUT_MS", "60000")]);
    assert_eq!(service.get("/readyz").status, 200);
    service.signal("TERM");
    service.wait_for_line(|l| l == "hook stuck-exporter");
    service.signal("INT");
    let status = service.wait_exit();
    assert_eq!(status.code(), Some(130), "{:?}", service.seen);
    assert!(!service.seen.iter().any(|l| l.starts_with("exit ")));
}
