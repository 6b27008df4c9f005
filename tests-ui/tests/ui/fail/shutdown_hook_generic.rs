use resilience::shutdown_hook;

#[shutdown_hook]
async fn close<T: Default>() {
    let _ = T::default();
}

fn main() {
    let _ = close::<u8>();
}
