//! A local Sentinel setup for tests: one master, one replica and three sentinels on free
//! loopback ports, in one temporary directory, every process killed and reaped on drop.
//! Optionally with passwords (data nodes: `requirepass` + `masterauth`, and `sentinel
//! auth-pass`; sentinels: their own `requirepass` + `sentinel sentinel-pass`) and TLS
//! everywhere (`tls-replication yes`; every process keeps a plain port for the test's own
//! `redis-cli`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{INSTALL_HINT, TlsFiles, answers_ping, free_port, generate_tls};

/// The monitored master's name.
pub const MASTER_NAME: &str = "mymaster";

#[derive(Debug)]
struct Proc {
    port: u16,
    tls_port: Option<u16>,
    child: Option<Child>,
}

/// Options for [`SentinelSetup`].
#[derive(Debug, Clone, Default)]
pub struct SentinelBuilder {
    password: Option<String>,
    sentinel_password: Option<String>,
    tls: bool,
    tls_auth_clients: bool,
}

impl SentinelBuilder {
    /// `requirepass` / `masterauth` on the data nodes (and `sentinel auth-pass`).
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// `requirepass` on the sentinels (and `sentinel sentinel-pass` between them).
    pub fn sentinel_password(mut self, password: &str) -> Self {
        self.sentinel_password = Some(password.to_owned());
        self
    }

    /// TLS on every process (clients, replication, sentinel links), with generated
    /// certificates (SAN `localhost`, `127.0.0.1`): sentinels name the master by its TLS port.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// TLS (as `.tls()`) requiring client certificates signed by the test CA everywhere
    /// (`tls-auth-clients yes`).
    pub fn tls_auth_clients(mut self) -> Self {
        self.tls = true;
        self.tls_auth_clients = true;
        self
    }

    /// Starts everything with `down-after-milliseconds` `down_after_ms` and waits until every
    /// sentinel knows the replica and the other two sentinels.
    pub fn start(self, down_after_ms: u64) -> SentinelSetup {
        let dir = tempfile::Builder::new()
            .prefix("resilience-redis-sentinel-")
            .tempdir()
            .expect("create a temporary directory for sentinel");
        let tls = self.tls.then(|| generate_tls(dir.path()));
        let tls_args = |port: u16| -> Vec<String> {
            let Some(t) = &tls else { return Vec::new() };
            let mut a: Vec<String> = vec!["--tls-port".into(), port.to_string()];
            for (k, v) in [
                ("--tls-cert-file", &t.server_cert),
                ("--tls-key-file", &t.server_key),
                ("--tls-ca-cert-file", &t.ca_cert),
            ] {
                a.push(k.into());
                a.push(v.display().to_string());
            }
            let auth_clients = if self.tls_auth_clients { "yes" } else { "no" };
            a.extend(
                [
                    "--tls-auth-clients",
                    auth_clients,
                    "--tls-replication",
                    "yes",
                ]
                .map(String::from),
            );
            a
        };
        let mut auth: Vec<String> = Vec::new();
        if let Some(p) = &self.password {
            auth.extend([
                "--requirepass".into(),
                p.clone(),
                "--masterauth".into(),
                p.clone(),
            ]);
        }
        let master_port = free_port();
        let master_tls = tls.as_ref().map(|_| free_port());
        let mut extra = auth.clone();
        extra.extend(master_tls.map(tls_args).unwrap_or_default());
        let master = spawn_server(dir.path(), "master", master_port, master_tls, &extra);
        // What the sentinels and the replica use: the TLS port when TLS is on.
        let monitored = master_tls.unwrap_or(master_port);
        let replica_port = free_port();
        let replica_tls = tls.as_ref().map(|_| free_port());
        let mut extra = auth.clone();
        extra.extend(replica_tls.map(tls_args).unwrap_or_default());
        extra.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            monitored.to_string(),
        ]);
        let replica = spawn_server(dir.path(), "replica", replica_port, replica_tls, &extra);
        let mut setup = SentinelSetup {
            master,
            replica,
            sentinels: Vec::new(),
            password: self.password.clone(),
            sentinel_password: self.sentinel_password.clone(),
            tls: tls.clone(),
            dir,
        };
        for i in 0..3 {
            let port = free_port();
            let tls_port = tls.as_ref().map(|_| free_port());
            let sdir = setup.dir.path().join(format!("sentinel-{i}"));
            fs::create_dir_all(&sdir).expect("sentinel dir");
            let conf = sdir.join("sentinel.conf");
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n\
                 dir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {monitored} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n\
                 sentinel failover-timeout {MASTER_NAME} 10000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = sdir.display()
            );
            if let Some(p) = &self.password {
                text.push_str(&format!("sentinel auth-pass {MASTER_NAME} {p}\n"));
            }
            if let Some(p) = &self.sentinel_password {
                text.push_str(&format!("requirepass {p}\nsentinel sentinel-pass {p}\n"));
            }
            if let (Some(t), Some(tp)) = (&tls, tls_port) {
                text.push_str(&format!(
                    "tls-port {tp}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
                     tls-auth-clients {}\ntls-replication yes\n",
                    t.server_cert.display(),
                    t.server_key.display(),
                    t.ca_cert.display(),
                    if self.tls_auth_clients { "yes" } else { "no" }
                ));
            }
            fs::write(&conf, text).expect("write sentinel.conf");
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
                tls_port,
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
}

/// One master, one replica, three sentinels (quorum 2).
#[derive(Debug)]
pub struct SentinelSetup {
    master: Proc,
    replica: Proc,
    sentinels: Vec<Proc>,
    password: Option<String>,
    sentinel_password: Option<String>,
    tls: Option<TlsFiles>,
    dir: tempfile::TempDir,
}

impl SentinelSetup {
    /// A plain setup (see [`SentinelBuilder::start`]).
    pub fn start(down_after_ms: u64) -> Self {
        Self::builder().start(down_after_ms)
    }

    /// Options: no passwords, no TLS.
    pub fn builder() -> SentinelBuilder {
        SentinelBuilder::default()
    }

    /// The generated certificates, for a setup built with `.tls()`.
    pub fn tls_files(&self) -> &TlsFiles {
        self.tls
            .as_ref()
            .expect("setup was not started with .tls()")
    }

    /// `(host, TLS port)` of every sentinel, for a setup built with `.tls()`.
    pub fn sentinel_tls_addrs(&self) -> Vec<(String, u16)> {
        self.sentinels
            .iter()
            .map(|p| ("127.0.0.1".to_owned(), p.tls_port.expect("not a TLS setup")))
            .collect()
    }

    /// The initial master's TLS port, for a setup built with `.tls()`.
    pub fn master_tls_port(&self) -> u16 {
        self.master.tls_port.expect("not a TLS setup")
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

    /// Kills the data node (initial master or replica) listening on `port` (plain or TLS).
    pub fn kill_port(&mut self, port: u16) {
        for p in [&mut self.master, &mut self.replica] {
            if p.port == port || p.tls_port == Some(port) {
                kill(p);
            }
        }
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis-cli -p <port> <args>` (plain port, with the password of that process), trimmed
    /// output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let password = if self.sentinels.iter().any(|p| p.port == port) {
            &self.sentinel_password
        } else {
            &self.password
        };
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(
                password
                    .iter()
                    .flat_map(|p| ["-a", p.as_str(), "--no-auth-warning"]),
            )
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

fn spawn_server(
    root: &Path,
    name: &str,
    port: u16,
    tls_port: Option<u16>,
    extra: &[String],
) -> Proc {
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
        tls_port,
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
