//! Circuit breakers: state machine, configuration and presets, the global registry.
