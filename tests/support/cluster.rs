//! A local Redis Cluster for tests: 3 masters + 3 replicas (or 3 masters only) on free loopback
//! ports, in one temporary directory (one sub-directory per node), every node killed and reaped
//! on drop. Optionally with `requirepass` / `masterauth` and TLS (`tls-cluster yes`,
//! `tls-replication yes`; every node keeps a plain port for the test's own `redis-cli`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{INSTALL_HINT, TlsFiles, answers_ping, free_port, generate_tls};

/// How long the cluster may take to form (`cluster_state:ok` everywhere, replicas in sync).
const FORM_DEADLINE: Duration = Duration::from_secs(30);

/// One cluster node.
#[derive(Debug)]
pub struct ClusterNode {
    /// Client port.
    pub port: u16,
    /// Cluster bus port (set explicitly: `port + 10000` may not exist).
    pub bus_port: u16,
    /// TLS client port, for a cluster built with `.tls()`.
    pub tls_port: Option<u16>,
    dir: PathBuf,
    child: Option<Child>,
}

impl ClusterNode {
    /// Whether the process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Options for [`RedisCluster`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    password: Option<String>,
    tls: bool,
    tls_auth_clients: bool,
    replicas: bool,
}

impl ClusterBuilder {
    /// `requirepass` and `masterauth` on every node.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// TLS on every node (client port, cluster bus and replication), with generated
    /// certificates (SAN `localhost`, `127.0.0.1`).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// TLS (as `.tls()`) requiring client certificates signed by the test CA on the client
    /// ports (`tls-auth-clients yes`).
    pub fn tls_auth_clients(mut self) -> Self {
        self.tls = true;
        self.tls_auth_clients = true;
        self
    }

    /// Three masters and no replicas (forms faster; enough when no failover is tested).
    pub fn masters_only(mut self) -> Self {
        self.replicas = false;
        self
    }

    /// Starts the nodes with `cluster-node-timeout` `node_timeout_ms`, creates the cluster
    /// with `redis-cli --cluster create`, and waits until it is ok.
    pub fn start(self, node_timeout_ms: u64) -> RedisCluster {
        let dir = tempfile::Builder::new()
            .prefix("resilience-redis-cluster-")
            .tempdir()
            .expect("create a temporary directory for the cluster");
        let tls = self.tls.then(|| generate_tls(dir.path()));
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            password: self.password,
            tls,
            tls_auth_clients: self.tls_auth_clients,
            dir,
        };
        for _ in 0..if self.replicas { 6 } else { 3 } {
            let node = cluster.spawn_node(node_timeout_ms);
            cluster.nodes.push(node);
        }
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port)),
        );
        let replicas = if self.replicas { "1" } else { "0" };
        args.extend(["--cluster-replicas", replicas, "--cluster-yes"].map(String::from));
        if let Some(p) = &cluster.password {
            args.extend(["-a".to_owned(), p.clone(), "--no-auth-warning".to_owned()]);
        }
        // `--cluster create` waits for the nodes to join without a deadline of its own (a
        // node that cannot reach the others' bus would hang the test): bound it.
        let out_path = cluster.dir.path().join("create.log");
        let out_file = fs::File::create(&out_path).expect("create.log");
        let mut create = Command::new("redis-cli")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out_file.try_clone().expect("clone create.log"))
            .stderr(out_file)
            .spawn()
            .unwrap_or_else(|e| panic!("running redis-cli: {e}; {INSTALL_HINT}"));
        let deadline = Instant::now() + FORM_DEADLINE;
        let status = loop {
            if let Ok(Some(status)) = create.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = create.kill();
                let _ = create.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.is_some_and(|s| s.success()),
            "redis-cli --cluster create failed or hung ({status:?}): {}",
            fs::read_to_string(&out_path).unwrap_or_default()
        );
        cluster.wait_until(FORM_DEADLINE, "the cluster to form", |c| c.is_formed());
        cluster
    }
}

/// A Redis Cluster of real `redis-server` processes.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
    password: Option<String>,
    tls: Option<TlsFiles>,
    tls_auth_clients: bool,
    // Dropped after the nodes are reaped.
    dir: tempfile::TempDir,
}

impl RedisCluster {
    /// A plain 3-master / 3-replica cluster (see [`ClusterBuilder::start`]).
    pub fn start(node_timeout_ms: u64) -> Self {
        Self::builder().start(node_timeout_ms)
    }

    /// Options for a cluster: 3 masters + 3 replicas, no password, no TLS.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            password: None,
            tls: false,
            tls_auth_clients: false,
            replicas: true,
        }
    }

    /// The generated certificates, for a cluster built with `.tls()`.
    pub fn tls_files(&self) -> &TlsFiles {
        self.tls
            .as_ref()
            .expect("cluster was not started with .tls()")
    }

    /// `(host, TLS port)` of every node, for a cluster built with `.tls()`.
    pub fn tls_seeds(&self) -> Vec<(String, u16)> {
        self.nodes
            .iter()
            .map(|n| {
                (
                    "127.0.0.1".to_owned(),
                    n.tls_port.expect("not a TLS cluster"),
                )
            })
            .collect()
    }

    fn spawn_node(&self, node_timeout_ms: u64) -> ClusterNode {
        let mut last = String::new();
        for _ in 0..5 {
            let (port, bus_port) = (free_port(), free_port());
            let tls_port = self.tls.as_ref().map(|_| free_port());
            if port == bus_port || tls_port == Some(port) || tls_port == Some(bus_port) {
                continue;
            }
            let dir = self.dir.path().join(format!("node-{port}"));
            fs::create_dir_all(&dir).expect("node dir");
            let log = dir.join("redis.log");
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string()])
                .args(["--cluster-port", &bus_port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", &node_timeout_ms.to_string()])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--daemonize", "no"])
                .args(["--protected-mode", "no"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(&log);
            if let Some(p) = &self.password {
                cmd.args(["--requirepass", p, "--masterauth", p]);
            }
            if let (Some(tls), Some(tls_port)) = (&self.tls, tls_port) {
                cmd.args(["--tls-port", &tls_port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&tls.server_cert)
                    .arg("--tls-key-file")
                    .arg(&tls.server_key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca_cert)
                    .args([
                        "--tls-auth-clients",
                        if self.tls_auth_clients { "yes" } else { "no" },
                    ])
                    .args(["--tls-cluster", "yes", "--tls-replication", "yes"]);
            }
            cmd.current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
                Err(e) => panic!("spawning redis-server: {e}"),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!(
                        "exited with {status}: {}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if answers_ping(port) {
                    return ClusterNode {
                        port,
                        bus_port,
                        tls_port,
                        dir,
                        child: Some(child),
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!("no answer on port {port}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("a cluster node did not start: {last}");
    }

    /// The nodes.
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// `(host, port)` of every node, as seeds for a cluster client.
    pub fn seeds(&self) -> Vec<(String, u16)> {
        self.nodes
            .iter()
            .map(|n| ("127.0.0.1".to_owned(), n.port))
            .collect()
    }

    /// The temporary directory holding every node's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis-cli -p <port> <args>`, trimmed output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["-a", p.as_str(), "--no-auth-warning"]),
            )
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running redis-cli: {e}; {INSTALL_HINT}"));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn running(&self) -> impl Iterator<Item = &ClusterNode> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// Every running node says `cluster_state:ok`, knows the others, and every replica's link
    /// to its master is up.
    fn is_formed(&self) -> bool {
        let running = self.running().count();
        self.running().all(|n| {
            let info = self.cli(n.port, &["CLUSTER", "INFO"]);
            let repl = self.cli(n.port, &["INFO", "replication"]);
            info.contains("cluster_state:ok")
                && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
                && (!repl.contains("role:slave") || repl.contains("master_link_status:up"))
        }) && running > 0
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

    /// The node currently serving `key`'s slot as master, as seen by a running node:
    /// `(port, node id)`.
    pub fn master_for_key(&self, key: &str) -> Option<(u16, String)> {
        let asker = self.running().next()?.port;
        let slot: u16 = self.cli(asker, &["CLUSTER", "KEYSLOT", key]).parse().ok()?;
        self.parse_nodes(asker)
            .into_iter()
            .find(|n| {
                n.master && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .map(|n| (n.port, n.id))
    }

    /// The port of a replica of the master with id `master_id`.
    pub fn replica_of(&self, master_id: &str) -> Option<u16> {
        let asker = self.running().next()?.port;
        self.parse_nodes(asker)
            .into_iter()
            .find(|n| !n.master && n.master_id == master_id)
            .map(|n| n.port)
    }

    /// Kills the node on `port` (SIGKILL) and reaps it.
    pub fn kill(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            n.kill();
        }
    }

    /// The `role:` line of `INFO replication` of the node on `port`.
    pub fn role(&self, port: u16) -> String {
        self.cli(port, &["INFO", "replication"])
            .lines()
            .find_map(|l| l.strip_prefix("role:"))
            .unwrap_or("")
            .trim()
            .to_owned()
    }

    /// Whether every running node reports `cluster_state:ok`.
    pub fn all_ok(&self) -> bool {
        self.running().all(|n| {
            self.cli(n.port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
        })
    }

    fn parse_nodes(&self, asker: u16) -> Vec<NodeLine> {
        self.cli(asker, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(NodeLine::parse)
            .collect()
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    id: String,
    port: u16,
    master: bool,
    failed: bool,
    master_id: String,
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return None;
        }
        // `127.0.0.1:port@bus[,hostname]`
        let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
        let flags = f[2];
        let slots = f[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|x| (x, x)),
            })
            .collect();
        Some(NodeLine {
            id: f[0].to_owned(),
            port,
            master: flags.contains("master"),
            failed: flags.contains("fail"),
            master_id: f[3].to_owned(),
            slots,
        })
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        reap_leftovers(self.dir.path());
    }
}

/// Kills (by pid) what is left in `dir` after the servers were killed: a server's forked child
/// (an RDB for a replica's full sync) can outlive its parent for a moment. Waits until gone,
/// at most 2 s.
pub(crate) fn reap_leftovers(dir: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = super::processes_in_dir(dir);
        if left.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in left {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
