use resilience::job;

#[job(queue = "emails")]
async fn welcome<T: serde_like::Payload>(user: T) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

#[job(queue = "emails")]
async fn digest(day: impl Into<String>) -> Result<(), std::io::Error> {
    let _ = day.into();
    Ok(())
}

mod serde_like {
    pub trait Payload {}
}

fn main() {}
