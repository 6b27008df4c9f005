//! A tour of the toolkit with no Redis needed.
fn main() {}
