//! Compile-time behaviour of the attributes and the derive: `tests/ui/fail/*.rs` must fail with
//! exactly the messages in their `.stderr` files (spans, "did you mean", valid names);
//! `tests/ui/pass/*.rs` must compile (each with `#![deny(warnings)]`).
//!
//! Regenerate the `.stderr` files after a deliberate change with `TRYBUILD=overwrite cargo test -p resilience-ui-tests
//! --test ui`, then read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
