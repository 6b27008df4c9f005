//! Health checks: checks, registry, monitor.
