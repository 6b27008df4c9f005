//! Builds an example of this package once per test binary (a no-op when it is fresh) and returns
//! its path, for tests that run an example as a real child process. Included with
//! `#[path = "support/example.rs"] mod example;` by the tests that need it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The path of `examples/<name>.rs`, built with `cargo build --example <name>`.
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    let mut built = built.lock().unwrap();
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Cargo sets CARGO_MANIFEST_DIR, CARGO_PKG_* ... for this test process; passed on, they
    // make build scripts that track them (ring's) rebuild on every run.
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
            cargo.env_remove(key);
        }
    }
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
    assert!(status.success(), "cargo build --example {name} failed");
    // <target>/debug/deps/<test>-<hash> -> <target>/debug/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} not found", path.display());
    built.insert(name.to_owned(), path.clone());
    path
}
