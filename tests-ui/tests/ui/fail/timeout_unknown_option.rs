use resilience::timeout;

#[timeout(mss = 100)]
async fn work() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = work();
}
