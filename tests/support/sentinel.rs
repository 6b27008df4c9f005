//! A local Sentinel setup for tests: one master, one replica and three sentinels on free
//! loopback ports, in one temporary directory, every process killed and reaped on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{INSTALL_HINT, answers_ping, free_port};

/// The monitored master's name.
pub const MASTER_NAME: &str = "mymaster";

#[derive(Debug)]
struct Proc {
    port: u16,
    child: Option<Child>,
}

/// One master, one replica, three sentinels (quorum 2).
#[derive(Debug)]
pub struct SentinelSetup {
    master: Proc,
    replica: Proc,
    sentinels: Vec<Proc>,
    dir: tempfile::TempDir,
}

impl SentinelSetup {
    /// Starts everything with `down-after-milliseconds` `down_after_ms` and waits until every
    /// sentinel knows the replica and the other two sentinels.
    pub fn start(down_after_ms: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("resilience-redis-sentinel-")
            .tempdir()
            .expect("create a temporary directory for sentinel");
        let master_port = free_port();
        let master = spawn_server(dir.path(), "master", master_port, &[]);
        let replica_port = free_port();
        let replica = spawn_server(
            dir.path(),
            "replica",
            replica_port,
            &["--replicaof", "127.0.0.1", &master_port.to_string()],
        );
        let mut setup = SentinelSetup {
            master,
            replica,
            sentinels: Vec::new(),
            dir,
        };
        for i in 0..3 {
            let port = free_port();
            let sdir = setup.dir.path().join(format!("sentinel-{i}"));
            fs::create_dir_all(&sdir).expect("sentinel dir");
            let conf = sdir.join("sentinel.conf");
            fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n\
                     dir {dir}\nlogfile {dir}/sentinel.log\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n\
                     sentinel failover-timeout {MASTER_NAME} 10000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    dir = sdir.display()
                ),
            )
            .expect("write sentinel.conf");
            let mut cmd = Command::new("redis-server");
            cmd.arg(&conf)
                .arg("--sentinel")
                .current_dir(&sdir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = spawn(cmd);
            let p = Proc {
                port,
                child: Some(child),
            };
            wait_ping(&p, &sdir.join("sentinel.log"));
            setup.sentinels.push(p);
        }
        let limit = Duration::from_secs(30);
        setup.wait_until(limit, "the replica to sync", |s| {
            s.cli(s.replica.port, &["INFO", "replication"])
                .contains("master_link_status:up")
        });
        setup.wait_until(limit, "the sentinels to know each other", |s| {
            s.sentinels.iter().all(|p| {
                let m = s.cli(p.port, &["SENTINEL", "MASTER", MASTER_NAME]);
                field(&m, "num-other-sentinels") == Some("2")
                    && field(&m, "num-slaves") == Some("1")
            })
        });
        setup
    }

    /// `(host, port)` of every sentinel.
    pub fn sentinel_addrs(&self) -> Vec<(String, u16)> {
        self.sentinels
            .iter()
            .map(|p| ("127.0.0.1".to_owned(), p.port))
            .collect()
    }

    /// The initial master's port.
    pub fn master_port(&self) -> u16 {
        self.master.port
    }

    /// The initial replica's port.
    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }

    /// A sentinel's port.
    pub fn sentinel_port(&self, i: usize) -> u16 {
        self.sentinels[i].port
    }

    /// The master's port according to the first sentinel.
    pub fn current_master_port(&self) -> Option<u16> {
        let out = self.cli(
            self.sentinels[0].port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// Kills the data node (initial master or replica) listening on `port`.
    pub fn kill_port(&mut self, port: u16) {
        for p in [&mut self.master, &mut self.replica] {
            if p.port == port {
                kill(p);
            }
        }
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis-cli -p <port> <args>`, trimmed output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running redis-cli: {e}; {INSTALL_HINT}"));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Polls `cond` every 50 ms for at most `limit`; panics naming `what` if it never holds.
    pub fn wait_until(&self, limit: Duration, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !cond(self) {
            if Instant::now() > deadline {
                panic!("timed out after {limit:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The value after `name` in redis-cli's one-item-per-line output of a flat reply.
fn field<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = out.lines();
    while let Some(l) = lines.next() {
        if l.trim() == name {
            return lines.next().map(str::trim);
        }
    }
    None
}

fn spawn(mut cmd: Command) -> Child {
    match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
        Err(e) => panic!("spawning redis-server: {e}"),
    }
}

fn spawn_server(root: &Path, name: &str, port: u16, extra: &[&str]) -> Proc {
    let dir: PathBuf = root.join(name);
    fs::create_dir_all(&dir).expect("server dir");
    let log = dir.join("redis.log");
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .args(["--protected-mode", "no"])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(&log)
        .args(extra)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let p = Proc {
        port,
        child: Some(spawn(cmd)),
    };
    wait_ping(&p, &log);
    p
}

fn wait_ping(p: &Proc, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers_ping(p.port) {
        if Instant::now() > deadline {
            panic!(
                "no answer on port {}; log:\n{}",
                p.port,
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill(p: &mut Proc) {
    if let Some(mut c) = p.child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        for p in self
            .sentinels
            .iter_mut()
            .chain([&mut self.master, &mut self.replica])
        {
            kill(p);
        }
        super::cluster::reap_leftovers(self.dir.path());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill(self);
    }
}
