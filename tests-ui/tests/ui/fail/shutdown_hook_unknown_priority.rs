use resilience::shutdown_hook;

#[shutdown_hook(priority = "hihg")]
async fn close_redis() {}

fn main() {
    let _ = close_redis();
}
