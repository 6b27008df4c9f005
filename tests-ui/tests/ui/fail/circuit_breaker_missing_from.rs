use resilience::circuit_breaker;

#[derive(Debug)]
pub struct ApiError;

#[circuit_breaker("openai")]
async fn complete(prompt: &str) -> Result<String, ApiError> {
    Ok(prompt.to_string())
}

fn main() {
    let _ = complete("hi");
}
