//! `timeout(duration, f)`: bound one call in time.
