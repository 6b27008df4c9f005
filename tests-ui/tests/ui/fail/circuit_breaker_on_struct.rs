use resilience::circuit_breaker;

#[circuit_breaker("payments")]
struct Payments;

fn main() {
    let _ = Payments;
}
