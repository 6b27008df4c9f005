use resilience::timeout;

#[derive(Debug)]
pub struct MyError;

#[timeout(ms = 100)]
async fn fetch() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
