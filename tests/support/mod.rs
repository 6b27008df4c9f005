//! Test support: a private `redis-server` per test, on a free loopback port in a temporary
//! directory, stopped (killed and reaped) on drop. Included by each test file with `mod support;`.
//!
//! Variants: `requirepass`, an ACL user, TLS (certificates generated at test time with the
//! `openssl` CLI into the temporary directory), and restart on the same port.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "redis-server not found: install it with \
     `sudo apt-get install redis-server redis-tools` (or run ./scripts/test, which does)";

/// How long a server may take to answer its first PING.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// Certificates generated for a TLS server, all PEM files in the server's directory.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that signed the server certificate (trust this one).
    pub ca_cert: PathBuf,
    /// The server certificate (SAN `localhost`, `127.0.0.1`).
    pub server_cert: PathBuf,
    /// The server private key.
    pub server_key: PathBuf,
    /// Another CA that signed nothing the server presents (trusting only it must fail).
    pub other_ca_cert: PathBuf,
    /// A client certificate (CN `resilience-client`) signed by `ca_cert`, for mutual TLS.
    pub client_cert: PathBuf,
    /// Its private key.
    pub client_key: PathBuf,
    /// A client certificate signed by the other CA (a server requiring client certs must refuse
    /// it).
    pub other_client_cert: PathBuf,
    /// Its private key.
    pub other_client_key: PathBuf,
}

/// Options for [`RedisServer`].
#[derive(Debug, Default, Clone)]
pub struct ServerBuilder {
    password: Option<String>,
    acl_user: Option<(String, String)>,
    tls: bool,
    tls_auth_clients: bool,
    appendonly: bool,
}

impl ServerBuilder {
    /// `requirepass <password>` (the `default` user's password).
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// An ACL user with all permissions; the `default` user is disabled.
    pub fn acl_user(mut self, user: &str, password: &str) -> Self {
        self.acl_user = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Also listen with TLS on a second port (`tls_port()`), with generated certificates.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// TLS (as `.tls()`) requiring a client certificate signed by the test CA
    /// (`tls-auth-clients yes`).
    pub fn tls_auth_clients(mut self) -> Self {
        self.tls = true;
        self.tls_auth_clients = true;
        self
    }

    /// `appendonly yes` with `appendfsync always`: every acknowledged write survives a kill and
    /// a `restart()` (the AOF lives in the server's directory).
    pub fn appendonly(mut self) -> Self {
        self.appendonly = true;
        self
    }

    /// Start the server and wait until it answers.
    pub fn start(self) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("resilience-redis-test-")
            .tempdir()
            .expect("create a temporary directory for redis-server");
        let tls = self.tls.then(|| generate_tls(dir.path()));
        let mut server = RedisServer {
            child: None,
            port: 0,
            tls_port: None,
            tls,
            options: self,
            dir,
        };
        server.spawn_on_free_port();
        server
    }
}

/// A private `redis-server`; killed and reaped on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    tls_port: Option<u16>,
    tls: Option<TlsFiles>,
    options: ServerBuilder,
    // Dropped last (after the child is reaped in `Drop`), removing the directory.
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A plain server: no password, no TLS.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Options for a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The plain-TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port, for a server built with `.tls()`.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("server was not started with .tls()")
    }

    /// The generated certificates, for a server built with `.tls()`.
    pub fn tls_files(&self) -> &TlsFiles {
        self.tls
            .as_ref()
            .expect("server was not started with .tls()")
    }

    /// `redis://127.0.0.1:<port>` (no credentials).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's temporary directory (its working directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kill the server (and reap it); `start_again` brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port(s) (after `stop`, or as a restart).
    pub fn start_again(&mut self) {
        self.stop();
        // The port was ours a moment ago; another process could take it in between, but on a
        // loopback test machine that is rare enough to retry briefly rather than move ports.
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.try_spawn(self.port, self.tls_port) {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("redis-server did not restart on port {}: {e}", self.port),
            }
        }
    }

    /// Kill and restart on the same port.
    pub fn restart(&mut self) {
        self.start_again();
    }

    /// Run a command through `redis-cli` against this server and return its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some((user, pass)) = &self.options.acl_user {
            cmd.args(["--user", user, "--pass", pass]);
        } else if let Some(pass) = &self.options.password {
            cmd.args(["-a", pass]);
        }
        cmd.arg("--no-auth-warning").args(args);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running redis-cli: {e}; {INSTALL_HINT}"));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn spawn_on_free_port(&mut self) {
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let tls_port = self.tls.is_some().then(free_port);
            match self.try_spawn(port, tls_port) {
                Ok(()) => return,
                Err(e) => last_err = e,
            }
        }
        panic!("redis-server did not start: {last_err}");
    }

    fn try_spawn(&mut self, port: u16, tls_port: Option<u16>) -> Result<(), String> {
        let dir = self.dir.path();
        let log_path = dir.join("redis.log");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log_path);
        if self.options.appendonly {
            // Later arguments win over the `--appendonly no` above.
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        }
        if let Some(pass) = &self.options.password {
            cmd.args(["--requirepass", pass]);
        }
        if let Some((user, pass)) = &self.options.acl_user {
            // `default` off: only the named user can authenticate.
            cmd.args([
                "--user",
                user,
                "on",
                &format!(">{pass}"),
                "~*",
                "&*",
                "+@all",
            ]);
            cmd.args(["--user", "default", "off"]);
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
                    if self.options.tls_auth_clients {
                        "yes"
                    } else {
                        "no"
                    },
                ]);
        }
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("spawning redis-server: {e}"),
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("exited with {status}; log:\n{log}"));
            }
            if answers_ping(port) {
                self.child = Some(child);
                self.port = port;
                self.tls_port = tls_port;
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no answer to PING on port {port} within {START_DEADLINE:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Any reply to an inline PING (`+PONG`, or `-NOAUTH` on a password-protected server) means the
/// server is up.
fn answers_ping(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if n > 0 && (buf[0] == b'+' || buf[0] == b'-'))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl (apt-get install openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate it signs (for `localhost` and `127.0.0.1`), an unrelated CA, and a
/// client certificate from each CA.
pub fn generate_tls(dir: &Path) -> TlsFiles {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
    fs::write(dir.join("ca.ext"), ca_ext).expect("write ca.ext");
    for (name, cn) in [("ca", "resilience test CA"), ("other-ca", "unrelated CA")] {
        let key = format!("{name}.key");
        let crt = format!("{name}.crt");
        let subj = format!("/CN={cn}");
        let mut args = vec!["req", "-x509"];
        args.extend_from_slice(&ec);
        args.extend_from_slice(&[
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &args);
    }
    let mut args = vec!["req"];
    args.extend_from_slice(&ec);
    args.extend_from_slice(&[
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &args);
    fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    )
    .expect("write client.ext");
    for (name, ca) in [("client", "ca"), ("other-client", "other-ca")] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let mut args = vec!["req"];
        args.extend_from_slice(&ec);
        args.extend_from_slice(&[
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=resilience-client",
        ]);
        openssl(dir, &args);
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                "client.ext",
            ],
        );
    }
    TlsFiles {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        other_ca_cert: dir.join("other-ca.crt"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
        other_client_cert: dir.join("other-client.crt"),
        other_client_key: dir.join("other-client.key"),
    }
}

/// Processes whose working directory is (or was, if deleted) under `dir`: a redis-server left
/// behind would show up here (redis rewrites its command line, so `cwd` is the reliable mark).
pub fn processes_in_dir(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(cwd) = fs::read_link(entry.path().join("cwd"))
            && cwd.to_string_lossy().starts_with(&needle)
        {
            found.push(pid);
        }
    }
    found
}

/// Poll `f` every 10 ms until it returns `Some`, for at most `limit`.
pub async fn poll_until<T>(limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub mod cluster;
pub mod jobs;
pub mod mariadb;
pub mod node;
pub mod postgres;
pub mod process;
pub mod sentinel;

/// Names that once broke a key: empty, braces, globs, separators, unicode, very long.
pub fn hostile_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "{}",
        "{",
        "}",
        "a}{b",
        "*",
        ":",
        "?[x]",
        "ключ 🔒",
        "%",
        "%7B",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push("{x}".repeat(2000));
    v
}
