//! `#[derive(RedisKey)]`.

/// What `#[derive(RedisKey)]` implements and calls.
#[cfg(feature = "redis")]
pub mod redis {
    pub use crate::redis::{KeySegment, KeyWriter, RedisKey};

    /// Writes one field of a derived key (spanned on the field's type in the generated code).
    #[inline]
    pub fn write_segment<T: KeySegment + ?Sized>(w: &mut KeyWriter, value: &T) {
        w.segment(value);
    }
}
