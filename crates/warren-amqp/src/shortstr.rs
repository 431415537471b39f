//! `ShortStr`: an AMQP short string (at most 255 bytes, UTF-8 checked) that shares the
//! frame's buffer instead of allocating, so exchange names and routing keys on the publish
//! path cost no allocation.

use bytes::Bytes;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Invariant: the bytes are valid UTF-8 and at most 255 long.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ShortStr(Bytes);

impl ShortStr {
    pub const MAX_LEN: usize = 255;

    pub const fn from_static(s: &'static str) -> ShortStr {
        assert!(s.len() <= 255);
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    /// Checks length and UTF-8; `None` if either is wrong.
    pub fn from_bytes(b: Bytes) -> Option<ShortStr> {
        if b.len() > Self::MAX_LEN || std::str::from_utf8(&b).is_err() {
            return None;
        }
        Some(ShortStr(b))
    }

    /// Truncates at a character boundary to 255 bytes (for server-built reply texts).
    pub fn truncating(s: &str) -> ShortStr {
        let mut end = s.len().min(Self::MAX_LEN);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        ShortStr(Bytes::copy_from_slice(&s.as_bytes()[..end]))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks UTF-8 (the invariant above).
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl Deref for ShortStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ShortStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for ShortStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Hash as `str` so that `Borrow<str>` lookups in hash maps agree.
        self.as_str().hash(state)
    }
}

impl From<&str> for ShortStr {
    /// Panics if longer than 255 bytes: for server-side literals only.
    fn from(s: &str) -> ShortStr {
        assert!(s.len() <= Self::MAX_LEN, "short string over 255 bytes");
        ShortStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ShortStr {
    /// Panics if longer than 255 bytes: for server-side values only.
    fn from(s: String) -> ShortStr {
        assert!(s.len() <= Self::MAX_LEN, "short string over 255 bytes");
        ShortStr(Bytes::from(s))
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
