use resilience::circuit_breaker;

#[circuit_breaker("payments")]
async fn charge() {}

fn main() {
    let _ = charge();
}
