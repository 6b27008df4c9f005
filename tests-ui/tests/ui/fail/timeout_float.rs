use resilience::timeout;

#[timeout(ms = 1.5)]
async fn work() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = work();
}
