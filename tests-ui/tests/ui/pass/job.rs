#![deny(warnings)]
//! `#[job]`: every option, the context parameter, a default name, a numeric priority, an alias
//! named `Result`, visibilities, a raw identifier, and the generated helpers' signatures.

use resilience::job;
use resilience::jobs::{JobContext, JobOptions, Queue, QueueError};

/// Sends the welcome mail.
#[job(queue = "emails", name = "welcome", retry = "patient", priority = "high", timeout_ms = 30_000)]
pub async fn welcome(user: u64, ctx: JobContext) -> Result<String, std::io::Error> {
    Ok(format!("{user} on attempt {}", ctx.attempt()))
}

#[job(queue = "emails")]
async fn digest(day: String) -> anyhow::Result<()> {
    let _ = day;
    Ok(())
}

#[job(queue = "reports", priority = 2_097_151, retry = "quick")]
pub(crate) async fn r#type(mut rows: Vec<(u32, String)>) -> std::io::Result<usize> {
    rows.push((0, String::new()));
    Ok(rows.len())
}

#[job(queue = "reports", priority = 0)]
async fn unprioritized(_: ()) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

pub mod nested {
    /// A public job in a public module: the helpers are public and documented too.
    #[resilience::job(queue = "nested", priority = "low", retry = "aggressive")]
    pub async fn ping(n: i64) -> Result<i64, std::io::Error> {
        Ok(n)
    }
}

#[allow(dead_code)]
async fn producer(emails: &Queue, reports: &Queue) -> Result<Vec<String>, QueueError> {
    Ok(vec![
        welcome_enqueue(emails, &7).await?,
        welcome_enqueue_with(emails, &8, JobOptions::new().job_id("welcome-8")).await?,
        digest_enqueue(emails, &"monday".to_owned()).await?,
        type_enqueue(reports, &vec![(1, "a".to_owned())]).await?,
        unprioritized_enqueue_with(reports, &(), JobOptions::new()).await?,
        nested::ping_enqueue(reports, &1).await?,
    ])
}

fn main() {
    // The functions stay callable as written.
    let _ = (welcome, digest("monday".into()), r#type(Vec::new()), unprioritized(()), nested::ping(1));
}
