use resilience::retry;

#[retry(preset = "quick")]
fn fetch(id: u32) -> Option<Vec<u32>> {
    Some(vec![id])
}

fn main() {
    let _ = fetch(1);
}
