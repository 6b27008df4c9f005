use resilience::shutdown_hook;

#[shutdown_hook(priority = "high")]
fn close_redis() {}

fn main() {
    close_redis();
}
