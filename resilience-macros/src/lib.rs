//! Attribute and derive macros for [`resilience`](https://docs.rs/resilience).
//!
//! Use them through the `resilience` crate, which re-exports every macro here; the generated code
//! names the runtime through `::resilience::__private`, whose contents are not a public API.
