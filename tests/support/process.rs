//! Process helpers for the server test supports (PostgreSQL, MariaDB): signals, a stalled
//! process, the system user to run a server as, copying a data directory, running a command.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Send `sig` (a name such as `STOP`, `CONT`, `INT`, `KILL`) to a process.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args(["-s", sig, "--", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A process stopped (SIGSTOP) for a while, as a hung server or a network partition looks to its
/// clients; continued (SIGCONT) after the pause, and on drop at the latest.
#[derive(Debug)]
pub struct Stall {
    pid: u32,
}

impl Stall {
    /// Stop `pid` now and continue it after `pause` (from a thread of its own).
    pub fn new(pid: u32, pause: Duration) -> Self {
        signal(pid, "STOP");
        std::thread::spawn(move || {
            std::thread::sleep(pause);
            signal(pid, "CONT");
        });
        Self { pid }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        signal(self.pid, "CONT");
    }
}

/// SIGKILL the child's process group while the child is still unreaped (so its pid, which is
/// the group id, cannot have been reused), then reap it.
pub fn kill_group_and_reap(mut child: Child) {
    signal_group(child.id(), "KILL");
    let _ = child.kill();
    let _ = child.wait();
}

fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args(["-s", sig, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// This process's effective user id (0: root).
pub fn effective_uid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// `(uid, gid)` of a system user, from `/etc/passwd`.
pub fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// `cp -a from to`.
pub fn copy_dir(from: &Path, to: &Path) {
    // `cp -a` keeps the owner (postgres) and the 0700 mode the server insists on.
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "cp -a {from:?} {to:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `cmd` to completion with `stdin`, panicking with its output if it fails.
pub fn run(mut cmd: Command, stdin: Option<&str>, what: &str, install_hint: &str) -> String {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{what} not found: {install_hint}")
        }
        Err(e) => panic!("spawning {what}: {e}"),
    };
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write to stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait for the command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}
