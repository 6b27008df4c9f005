//! `tower::Layer`s over the toolkit's runtime types.

mod in_flight;

pub use in_flight::{InFlight, InFlightLayer};
