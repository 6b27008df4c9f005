use resilience::bulkhead;

#[derive(Debug)]
pub struct MyError;

#[bulkhead(max_concurrent = 2)]
async fn fetch() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
