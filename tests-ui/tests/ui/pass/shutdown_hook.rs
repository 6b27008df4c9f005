#![deny(warnings)]
//! `#[shutdown_hook]`: unit and `Result` hooks, named priorities and numbers, custom names.

use resilience::shutdown_hook;

#[shutdown_hook(priority = "high")]
async fn close_redis() {}

#[shutdown_hook(name = "flush-metrics", priority = 10)]
pub async fn flush() -> Result<(), std::io::Error> {
    Ok(())
}

#[shutdown_hook]
async fn say_goodbye() -> Result<(), String> {
    Ok(())
}

#[shutdown_hook(priority = -5)]
async fn last_of_all() {}

fn main() {
    // The hooks are registered statically; calling them directly still works.
    let _ = (close_redis(), flush(), say_goodbye(), last_of_all());
}
