//! `cargo run --example database` as a real child process: on SQLite (no server) and on a
//! private PostgreSQL (`--postgres URL`), it exits 0 and shows each part — with the password
//! of the URL nowhere in its output.

mod support;

#[path = "support/example.rs"]
mod example;

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(example::example_binary("database"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the database example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "== health",
        "Healthy in",
        "attempt 1: debit written, then the connection drops",
        "attempt 2: debit and credit written, committing",
        "rows in the ledger: 2",
        "breaker Closed",
        "recommendation: High number of slow queries detected",
        "shutdown Success; pool closed: true",
    ] {
        assert!(
            stdout.contains(expected),
            "`{expected}` missing from:\n{stdout}"
        );
    }
    // The three deliberately slow queries are slow; on a loaded machine a `SELECT 1` may be too.
    let slow: u64 = stdout
        .split(" slow (over ")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no slow-query count in:\n{stdout}"));
    assert!(slow >= 3, "{slow} slow queries:\n{stdout}");
    stdout
}

#[test]
fn database_example_runs_on_sqlite() {
    let out = run(&[]);
    assert!(out.contains("SQLite pool `main`"), "{out}");
}

#[test]
fn database_example_runs_on_postgres_without_showing_the_password() {
    let server = support::postgres::PostgresServer::start();
    let url = server.url();
    let out = run(&["--postgres", &url]);
    assert!(out.contains("PostgreSQL pool `main`"), "{out}");
    assert!(out.contains("server PostgreSQL"), "{out}");
    let password = url
        .split_once("://app:")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(pw, _)| pw.to_owned())
        .expect("a password in the URL");
    assert!(!out.contains(&password), "{out}");
}
