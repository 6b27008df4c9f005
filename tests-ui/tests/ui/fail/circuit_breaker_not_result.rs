use resilience::circuit_breaker;

#[circuit_breaker("openai")]
fn complete(prompt: &str) -> Option<String> {
    Some(prompt.to_string())
}

fn main() {
    let _ = complete("hi");
}
