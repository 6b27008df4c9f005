//! Redis layer: secure client, typed collision-safe keys, Lua scripts for atomic operations.
