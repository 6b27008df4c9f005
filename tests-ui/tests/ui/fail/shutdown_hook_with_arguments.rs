use resilience::shutdown_hook;

#[shutdown_hook]
async fn close_redis(url: String) {
    let _ = url;
}

fn main() {
    let _ = close_redis(String::new());
}
