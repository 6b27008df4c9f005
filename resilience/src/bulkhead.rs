//! Bulkhead: a cap on concurrent calls, with a bounded queue and a queue timeout.
