use resilience::bulkhead;

#[bulkhead(max_queued = 4)]
async fn work() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = work();
}
