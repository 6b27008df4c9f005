//! Graceful shutdown: prioritised hooks, signals, readiness.
