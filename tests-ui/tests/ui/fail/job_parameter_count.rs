use resilience::job;
use resilience::jobs::JobContext;

#[job(queue = "emails")]
async fn ping() -> Result<(), std::io::Error> {
    Ok(())
}

#[job(queue = "emails")]
async fn welcome(user: u64, ctx: JobContext, extra: u32) -> Result<(), std::io::Error> {
    let _ = (user, ctx, extra);
    Ok(())
}

fn main() {}
