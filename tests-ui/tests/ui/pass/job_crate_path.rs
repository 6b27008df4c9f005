#![deny(warnings)]
//! `#[job(crate = "...")]` with the runtime under another name.

extern crate resilience as renamed;

#[renamed::job(queue = "emails", retry = "quick", crate = "::renamed")]
async fn welcome(user: u64) -> Result<u64, std::io::Error> {
    Ok(user)
}

fn main() {
    let _ = (welcome(1), welcome_enqueue);
}
