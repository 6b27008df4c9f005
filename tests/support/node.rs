//! Node BullMQ for the interop tests: the `bullmq@5` npm package installed once into
//! `<target>/node-bullmq/` (a file lock keeps parallel test processes from installing at the same
//! time), and the scripts in `tests/fixtures/node/` run against it.
//!
//! Missing `node` or `npm` fails the test with the install command: never a silent pass.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::Command;

const INSTALL_HINT: &str = "node/npm not found: install them with \
     `sudo apt-get install nodejs npm` (or run ./scripts/test, which does)";

/// The npm package the interop tests run, as `npm install` names it.
const PACKAGE: &str = "bullmq@5";

/// How long one script may run before the test fails.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(60);

/// Node with the `bullmq` package installed.
#[derive(Debug)]
pub struct NodeBullmq {
    /// The folder whose `node_modules` holds `bullmq`.
    dir: PathBuf,
}

/// The installed package, installing it on first use (once per machine, then reused).
pub fn bullmq() -> &'static NodeBullmq {
    static NODE: OnceLock<NodeBullmq> = OnceLock::new();
    NODE.get_or_init(install)
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`, honouring CARGO_TARGET_DIR.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

fn require_tool(tool: &str) {
    match std::process::Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{tool} --version` failed ({}): {INSTALL_HINT}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("running `{tool}`: {e}; {INSTALL_HINT}"),
    }
}

fn install() -> NodeBullmq {
    require_tool("node");
    require_tool("npm");
    let dir = target_dir().join("node-bullmq");
    fs::create_dir_all(&dir).expect("create the node-bullmq folder");
    let lock = fs::File::create(dir.join(".install.lock")).expect("create the install lock");
    // Several test processes (nextest) may get here at once: one installs, the others wait.
    lock.lock().expect("lock the node-bullmq folder");
    // Written after a whole install only: an install cut short is redone.
    let marker = dir.join(".installed-bullmq-5");
    if !marker.exists() {
        fs::write(
            dir.join("package.json"),
            "{\"name\":\"resilience-node-bullmq\",\"private\":true}\n",
        )
        .expect("write package.json");
        let out = std::process::Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                PACKAGE,
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running npm: {e}; {INSTALL_HINT}"));
        assert!(
            out.status.success() && dir.join("node_modules/bullmq/package.json").exists(),
            "`npm install {PACKAGE}` in {} failed:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(&marker, PACKAGE).expect("mark the install done");
    }
    let _ = lock.unlock();
    NodeBullmq { dir }
}

impl NodeBullmq {
    /// The folder the package is installed in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn command(&self, script: &str, config: &serde_json::Value) -> Command {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/node")
            .join(script);
        assert!(path.exists(), "no node script {}", path.display());
        let mut cmd = Command::new("node");
        cmd.arg(path)
            .arg(config.to_string())
            // The scripts resolve `bullmq` from here (ESM imports ignore NODE_PATH).
            .env("BULLMQ_DIR", &self.dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `script` with `config` (as JSON, its one argument) to the end and returns what it
    /// printed on stdout, parsed as JSON. Fails the test if it fails or outlasts a minute.
    pub async fn run(&self, script: &str, config: &serde_json::Value) -> serde_json::Value {
        let child = self
            .command(script, config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning node: {e}; {INSTALL_HINT}"));
        let out = tokio::time::timeout(SCRIPT_DEADLINE, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("node {script} ran past {SCRIPT_DEADLINE:?}"))
            .expect("wait for node");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "node {script} failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("node {script} printed no JSON ({e}): {stdout}"))
    }
}
