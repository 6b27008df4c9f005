use resilience::bulkhead;

#[bulkhead(max_concurrent = 4)]
fn work() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = work();
}
