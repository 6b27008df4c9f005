//! Rate limiting: an in-memory GCRA limiter, a keyed limiter with bounded memory.
