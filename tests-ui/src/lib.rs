//! Holds the UI tests in `tests/`; no code of its own.
