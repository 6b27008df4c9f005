//! Retry engine: backoff strategies, policies and presets, deadlines, error classification.
