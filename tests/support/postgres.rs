//! A private PostgreSQL server per test: `postgres` on a free loopback port with its data
//! directory and Unix socket in a temporary directory, stopped and removed on drop.
//!
//! The server refuses to run as root, so when the tests run as root it runs as the `postgres`
//! system user (the Debian package creates it), with the temporary directory owned by that user.
//! `initdb` costs ~1 s, so one template data directory (with the `app` role and database already
//! made) is created once under `target/tmp` and copied (~0.1 s) for each server.
//!
//! Roles: `app` (password [`APP_PASSWORD`], owner of database `app`) for the code under test, so
//! the URLs carry credentials (redaction can be tested); `postgres`, the superuser (password
//! [`SUPERUSER_PASSWORD`] over TCP, trusted over the Unix socket that [`PostgresServer::psql`]
//! uses).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::process::{copy_dir, effective_uid, kill_group_and_reap, run, signal, system_user};

const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, postgres) not found: \
     apt-get install postgresql (or run ./scripts/test, which does)";

/// The `app` role's password (in [`PostgresServer::url`]); tests check it never leaks.
pub const APP_PASSWORD: &str = "app-Pw-7f3a9c1e";
/// The `postgres` superuser's password (in [`PostgresServer::superuser_url`]).
pub const SUPERUSER_PASSWORD: &str = "su-Pw-0b8d2e64";

/// Bump when the template's contents change, so a stale cached template is not reused.
const TEMPLATE_VERSION: u32 = 2;
/// How long a server may take to report itself ready (and a stop to finish).
const START_DEADLINE: Duration = Duration::from_secs(15);
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Settings for speed: the data is thrown away, so durability buys nothing here.
const FAST_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("listen_addresses", "127.0.0.1"),
    ("shared_buffers", "16MB"),
    ("max_connections", "100"),
    // Tests SIGSTOP and kill servers; nothing should wait on a checkpoint or autovacuum.
    ("autovacuum", "off"),
    // Dynamic shared memory as files in the data directory, not /dev/shm segments: a killed
    // server cannot clean up, and its segments would stay behind in memory.
    ("dynamic_shared_memory_type", "mmap"),
    ("log_min_messages", "warning"),
];

/// Options for [`PostgresServer`].
#[derive(Debug, Default, Clone)]
pub struct PostgresBuilder {
    settings: Vec<(String, String)>,
}

impl PostgresBuilder {
    /// A `-c name=value` server setting (after the defaults, so it wins).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Copy the template, start the server and wait until it is ready.
    pub fn start(self) -> PostgresServer {
        let bins = bins();
        // tmpfs when there is one: copying the template there takes ~0.08 s against ~1.2 s on
        // this machine's disk, and the server's writes cost nothing either.
        let shm = Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("resilience-pg-");
        let dir = if shm.is_dir() {
            builder.tempdir_in(shm).or_else(|_| builder.tempdir())
        } else {
            builder.tempdir()
        }
        .expect("create a temporary directory for postgres");
        let data = dir.path().join("data");
        copy_dir(&template(bins), &data);
        if let Some((uid, gid)) = bins.run_as {
            // The socket and log live in the directory itself; the data was copied with its owner.
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the temporary directory to postgres");
        }
        let mut server = PostgresServer {
            child: None,
            port: 0,
            data,
            settings: self.settings,
            dir,
        };
        server.spawn_on_free_port();
        server
    }
}

/// A private PostgreSQL server; killed (with its backends) and removed on drop.
#[derive(Debug)]
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
    settings: Vec<(String, String)>,
    // Dropped last (after the processes are reaped in `Drop`), removing the directory.
    dir: tempfile::TempDir,
}

impl PostgresServer {
    /// A server with the default (fast) settings.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Options for a server.
    pub fn builder() -> PostgresBuilder {
        PostgresBuilder::default()
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://app:<APP_PASSWORD>@127.0.0.1:<port>/app`.
    pub fn url(&self) -> String {
        format!("postgres://app:{APP_PASSWORD}@127.0.0.1:{}/app", self.port)
    }

    /// The superuser over TCP: `postgres://postgres:<SUPERUSER_PASSWORD>@127.0.0.1:<port>/app`.
    pub fn superuser_url(&self) -> String {
        format!(
            "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/app",
            self.port
        )
    }

    /// The temporary directory (also the Unix socket directory; the data is in `data/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The postmaster's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server log so far (stderr of every start).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Fast shutdown (SIGINT: active transactions are rolled back, clients disconnected), waiting
    /// until the postmaster exited; `start_again` brings it back on the same port and data.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), "INT");
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        kill_group_and_reap(child);
        panic!(
            "postgres did not stop within {STOP_DEADLINE:?}; log:\n{}",
            self.log()
        );
    }

    /// SIGKILL the postmaster and all its backends at once (a crash: no shutdown checkpoint, the
    /// next start runs crash recovery; clients see their connections reset).
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            kill_group_and_reap(child);
        }
    }

    /// Start again on the same port with the same data (after `stop` or `kill`, or as a restart).
    pub fn start_again(&mut self) {
        self.stop();
        // The port was ours a moment ago; another process could take it in between, and after a
        // kill the old shared memory may take a moment to go: retry briefly.
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.try_spawn(self.port) {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("postgres did not restart on port {}: {e}", self.port),
            }
        }
    }

    /// Fast shutdown and start again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Run SQL through `psql` as the superuser (Unix socket) in database `app`; the trimmed,
    /// unaligned, tuples-only output. Panics on an SQL error.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}"))
    }

    /// As [`psql`](Self::psql), returning psql's error output on failure.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let bins = bins();
        let out = Command::new(bins.dir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", "app"])
            .args(["-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running psql: {e}; {INSTALL_HINT}"));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Process ids of the backends serving role `app` (its client connections).
    pub fn app_backend_pids(&self) -> Vec<u32> {
        self.psql("SELECT pid FROM pg_stat_activity WHERE usename = 'app'")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn spawn_on_free_port(&mut self) {
        let mut last_err = String::new();
        for _ in 0..5 {
            match self.try_spawn(super::free_port()) {
                Ok(()) => return,
                Err(e) => last_err = e,
            }
        }
        panic!("postgres did not start: {last_err}");
    }

    fn try_spawn(&mut self, port: u16) -> Result<(), String> {
        let bins = bins();
        let log_path = self.dir.path().join("postgres.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open postgres.log");
        let mut cmd = Command::new(bins.dir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(self.dir.path());
        for (name, value) in FAST_SETTINGS
            .iter()
            .map(|(n, v)| (*n, *v))
            .chain(self.settings.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        {
            cmd.args(["-c", &format!("{name}={value}")]);
        }
        // Its own process group: `kill` and `Drop` reach the backends too, and a Ctrl-C in the
        // terminal does not reach the server before the test's own cleanup.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        as_postgres(&mut cmd, bins);
        cmd.current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("spawning postgres: {e}"),
        };
        let pid_file = self.data.join("postmaster.pid");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}; log:\n{}", self.log()));
            }
            // pg_ctl's own readiness test: the postmaster writes "ready" as line 8 of its lock
            // file once it accepts connections (no process spawned per poll).
            if let Ok(text) = fs::read_to_string(&pid_file) {
                let lines: Vec<&str> = text.lines().collect();
                if lines.first().map(|l| l.trim()) == Some(&child.id().to_string())
                    && lines.get(7).map(|l| l.trim()) == Some("ready")
                {
                    self.child = Some(child);
                    self.port = port;
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                kill_group_and_reap(child);
                return Err(format!(
                    "not ready on port {port} within {START_DEADLINE:?}; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // No shutdown checkpoint needed: the data directory is removed right after.
        self.kill();
    }
}

/// Where the server binaries are, and whom to run them as.
#[derive(Debug)]
struct Bins {
    dir: PathBuf,
    /// `Some((uid, gid))` of the `postgres` user when we are root.
    run_as: Option<(u32, u32)>,
}

fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let dir = find_bin_dir().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let run_as = (effective_uid() == 0).then(|| {
            system_user("postgres").unwrap_or_else(|| {
                panic!("running as root and there is no `postgres` system user; {INSTALL_HINT}")
            })
        });
        Bins { dir, run_as }
    })
}

/// `/usr/lib/postgresql/<highest version>/bin` (Debian's layout), else `initdb` on `PATH`.
fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
    })
}

fn as_postgres(cmd: &mut Command, bins: &Bins) {
    if let Some((uid, gid)) = bins.run_as {
        // std drops the supplementary groups too when switching away from root.
        std::os::unix::process::CommandExt::uid(cmd, uid);
        std::os::unix::process::CommandExt::gid(cmd, gid);
    }
}

/// The template data directory, created once (by whichever test process gets there first) under
/// `target/tmp` and reused by every later test process.
fn template(bins: &Bins) -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let version = bins
                .dir
                .to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>();
            let path = tmp.join(format!("pg-template-v{TEMPLATE_VERSION}{version}"));
            if path.join("PG_VERSION").is_file() {
                return path;
            }
            fs::create_dir_all(tmp).expect("create target/tmp");
            let staging = tempfile::Builder::new()
                .prefix("pg-template-staging-")
                .tempdir_in(tmp)
                .expect("create a staging directory");
            if let Some((uid, gid)) = bins.run_as {
                std::os::unix::fs::chown(staging.path(), Some(uid), Some(gid))
                    .expect("chown the staging directory to postgres");
            }
            let data = staging.path().join("data");
            init_template(bins, &data);
            // Atomic: a concurrent process that renamed first wins, and ours is thrown away.
            match fs::rename(&data, &path) {
                Ok(()) => {}
                Err(_) if path.join("PG_VERSION").is_file() => {}
                Err(e) => panic!("moving the template into {path:?}: {e}"),
            }
            path
        })
        .clone()
}

fn init_template(bins: &Bins, data: &Path) {
    let mut initdb = Command::new(bins.dir.join("initdb"));
    initdb
        .arg("-D")
        .arg(data)
        .args(["-U", "postgres", "-E", "UTF8", "--locale=C"])
        .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
        // 1 MB WAL segments instead of 16: a smaller template to copy per server.
        .args(["--no-sync", "--no-instructions", "--wal-segsize=1"])
        .env("LC_ALL", "C");
    as_postgres(&mut initdb, bins);
    run(initdb, None, "initdb", INSTALL_HINT);
    // Single-user mode makes the roles and database without starting a server on a port.
    let sql = format!(
        "ALTER ROLE postgres PASSWORD '{SUPERUSER_PASSWORD}';\n\
         CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}';\n\
         CREATE DATABASE app OWNER app;\n"
    );
    let mut single = Command::new(bins.dir.join("postgres"));
    single
        .args(["--single", "-D"])
        .arg(data)
        .args(["-c", "fsync=off", "postgres"])
        .env("LC_ALL", "C");
    as_postgres(&mut single, bins);
    let out = run(single, Some(&sql), "postgres --single", INSTALL_HINT);
    assert!(
        !out.contains("ERROR"),
        "creating the app role and database failed:\n{out}"
    );
}
