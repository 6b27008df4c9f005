//! A private MariaDB server per test: `mariadbd` on a free loopback port with its data directory
//! and socket in a temporary directory, killed and removed on drop.
//!
//! As root, `mariadbd --user=mysql` drops to the `mysql` system user itself (the Debian package
//! creates it); the data directory is that user's. `mariadb-install-db` runs once, into a template
//! under `target/tmp` (with the `app` user and database made), copied for each server.

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::process::{copy_dir, effective_uid, kill_group_and_reap, run, signal, system_user};

const INSTALL_HINT: &str = "MariaDB server binaries (mariadbd, mariadb-install-db) not found: \
     apt-get install mariadb-server (or run ./scripts/test, which does)";

/// The `app` user's password (in [`MariaDbServer::url`]); tests check it never leaks.
pub const APP_PASSWORD: &str = "app-Pw-my-4c7e20b9";

/// Bump when the template's contents change.
const TEMPLATE_VERSION: u32 = 1;
const START_DEADLINE: Duration = Duration::from_secs(15);
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Settings for speed (the data is thrown away) and for tmpfs (no `O_DIRECT` there).
const FAST_SETTINGS: &[&str] = &[
    "--innodb-flush-method=fsync",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-log-file-size=4M",
    "--innodb-buffer-pool-size=32M",
    "--skip-log-bin",
    "--skip-name-resolve",
    "--performance-schema=OFF",
];

/// A private MariaDB server; killed and removed on drop.
#[derive(Debug)]
pub struct MariaDbServer {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
    settings: Vec<String>,
    // Dropped last (after the process is reaped in `Drop`), removing the directory.
    dir: tempfile::TempDir,
}

impl MariaDbServer {
    /// A server with the default (fast) settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `mariadbd` options (`--innodb-lock-wait-timeout=1`, ...).
    pub fn start_with(settings: &[&str]) -> Self {
        let run_as = run_as();
        let shm = Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("resilience-mariadb-");
        let dir = if shm.is_dir() {
            builder.tempdir_in(shm).or_else(|_| builder.tempdir())
        } else {
            builder.tempdir()
        }
        .expect("create a temporary directory for mariadbd");
        let data = dir.path().join("data");
        copy_dir(&template(), &data);
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the temporary directory to mysql");
        }
        let mut server = Self {
            child: None,
            port: 0,
            data,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
            dir,
        };
        let mut last_err = String::new();
        for _ in 0..5 {
            match server.try_spawn(super::free_port()) {
                Ok(()) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("mariadbd did not start: {last_err}");
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://app:<APP_PASSWORD>@127.0.0.1:<port>/app`.
    pub fn url(&self) -> String {
        format!("mysql://app:{APP_PASSWORD}@127.0.0.1:{}/app", self.port)
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mariadb.log")).unwrap_or_default()
    }

    /// Normal shutdown (SIGTERM), waiting until the server exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), "TERM");
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        kill_group_and_reap(child);
        panic!(
            "mariadbd did not stop within {STOP_DEADLINE:?}; log:\n{}",
            self.log()
        );
    }

    /// Start again on the same port with the same data (after `stop`).
    pub fn start_again(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.try_spawn(self.port) {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("mariadbd did not restart on port {}: {e}", self.port),
            }
        }
    }

    fn try_spawn(&mut self, port: u16) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mariadb.log"))
            .expect("open mariadb.log");
        let mut cmd = Command::new("mariadbd");
        // `--no-defaults` first: the machine's my.cnf (and its socket, port, datadir) stay out.
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("mariadb.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mariadb.pid").display()
            ))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .args(FAST_SETTINGS)
            .args(&self.settings);
        if run_as().is_some() {
            cmd.arg("--user=mysql");
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("spawning mariadbd: {e}"),
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}; log:\n{}", self.log()));
            }
            if sends_handshake(port) {
                self.child = Some(child);
                self.port = port;
                return Ok(());
            }
            if Instant::now() > deadline {
                kill_group_and_reap(child);
                return Err(format!(
                    "no handshake on port {port} within {START_DEADLINE:?}; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_group_and_reap(child);
        }
    }
}

/// The server speaks first: a handshake packet (protocol version 10) once it accepts clients.
fn sends_handshake(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && buf[4] == 10
}

/// `Some((uid, gid))` of `mysql` when we are root (the server then switches to it).
fn run_as() -> Option<(u32, u32)> {
    static RUN_AS: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *RUN_AS.get_or_init(|| {
        (effective_uid() == 0).then(|| {
            system_user("mysql").unwrap_or_else(|| {
                panic!("running as root and there is no `mysql` system user; {INSTALL_HINT}")
            })
        })
    })
}

/// The template data directory, made once under `target/tmp` and reused by later processes.
fn template() -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let path = tmp.join(format!("mariadb-template-v{TEMPLATE_VERSION}"));
            if path.join("mysql").is_dir() && path.join("app").is_dir() {
                return path;
            }
            fs::create_dir_all(tmp).expect("create target/tmp");
            let staging = tempfile::Builder::new()
                .prefix("mariadb-template-staging-")
                .tempdir_in(tmp)
                .expect("create a staging directory");
            if let Some((uid, gid)) = run_as() {
                std::os::unix::fs::chown(staging.path(), Some(uid), Some(gid))
                    .expect("chown the staging directory to mysql");
            }
            let data = staging.path().join("data");
            init_template(&data);
            // Atomic: a concurrent process that renamed first wins, and ours is thrown away.
            match fs::rename(&data, &path) {
                Ok(()) => {}
                Err(_) if path.join("app").is_dir() => {}
                Err(e) => panic!("moving the template into {path:?}: {e}"),
            }
            path
        })
        .clone()
}

fn init_template(data: &Path) {
    let user = run_as().map(|_| "--user=mysql");
    let mut install = Command::new("mariadb-install-db");
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=socket", "--skip-test-db"])
        .args(FAST_SETTINGS)
        .args(user);
    run(install, None, "mariadb-install-db", INSTALL_HINT);
    // Bootstrap mode runs SQL without a listening server; FLUSH PRIVILEGES loads the grant
    // tables it starts without, so that CREATE USER works.
    let sql = format!(
        "FLUSH PRIVILEGES;\n\
         CREATE DATABASE app;\n\
         CREATE USER 'app'@'%' IDENTIFIED BY '{APP_PASSWORD}';\n\
         GRANT ALL ON app.* TO 'app'@'%';\n\
         GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'app'@'%';\n"
    );
    let mut boot = Command::new("mariadbd");
    boot.arg("--no-defaults")
        .arg("--bootstrap")
        .arg(format!("--datadir={}", data.display()))
        .args(FAST_SETTINGS)
        .args(user);
    let out = run(boot, Some(&sql), "mariadbd --bootstrap", INSTALL_HINT);
    assert!(
        !out.contains("[ERROR]"),
        "creating the app user and database failed:\n{out}"
    );
}
