//! Typed content identifiers.
//!
//! Every identifier is a BLAKE3 hash, but of different things: a [`ChunkId`] is the plain
//! BLAKE3 of a chunk's bytes (so `b3sum` of a chunk agrees with it), while repository objects
//! (chunk lists, trees, snapshots) are hashed with a per-kind derived key, so an object of one
//! kind can never be mistaken for another or for a chunk. Identifiers are never raw `[u8; 32]`
//! outside this module: the type says what was hashed.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        /// Hex in human-readable formats (JSON), the 32 raw bytes in binary ones (postcard).
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let s = String::deserialize(deserializer)?;
                    Self::from_hex(&s).ok_or_else(|| {
                        serde::de::Error::custom(concat!("not a 64-digit hex ", stringify!($name)))
                    })
                } else {
                    <[u8; 32]>::deserialize(deserializer).map(Self)
                }
            }
        }

        impl $name {
            /// The raw hash bytes, for storage keys.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Rebuilds an id read back from storage. The bytes must come from `as_bytes`.
            pub fn from_stored(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// Lower-case hex, 64 characters.
            pub fn to_hex(&self) -> String {
                let mut s = String::with_capacity(64);
                for b in self.0 {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }

            /// The first 8 hex characters, as shown to people.
            pub fn short(&self) -> String {
                self.to_hex()[..8].to_string()
            }

            /// Parses 64 hex characters.
            pub fn from_hex(s: &str) -> Option<Self> {
                if s.len() != 64 || !s.is_ascii() {
                    return None;
                }
                let mut out = [0u8; 32];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
                }
                Some(Self(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

id_type!(
    /// BLAKE3 of a chunk's bytes. Only [`ChunkId::of`] computes one.
    ChunkId
);
id_type!(
    /// Identity of a file's content: the hash of its chunk list (a Merkle root over the
    /// chunks), so two files with equal `ContentId` hold equal bytes.
    ContentId
);
id_type!(
    /// Hash of one directory's serialized listing in a snapshot.
    TreeId
);
id_type!(
    /// Hash of a snapshot record (origin, time, root tree).
    SnapshotId
);

id_type!(
    /// BLAKE3 of a whole file's bytes, kept for files whose chunks are a transformed
    /// representation (Ogg pages), to prove a rebuilt file byte-exact.
    FileHash
);
id_type!(
    /// BLAKE3 of a file's audio stream alone (for Ogg, of its pages with sequence numbers and
    /// CRCs zeroed): the same recording keeps it through retagging, moves and renames.
    AudioHash
);

impl ChunkId {
    /// Hashes a chunk. The only way to make a `ChunkId` from data.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
}

impl FileHash {
    /// The hash a hasher fed with the whole file holds.
    pub fn of_hasher(hasher: &blake3::Hasher) -> Self {
        Self(*hasher.finalize().as_bytes())
    }
}

impl AudioHash {
    /// The hash a hasher fed with the audio stream holds.
    pub fn of_hasher(hasher: &blake3::Hasher) -> Self {
        Self(*hasher.finalize().as_bytes())
    }
}

/// Derivation contexts for object hashes; changing one is a repository format change.
const CONTENT_CONTEXT: &str = "musicfs 2026-11 chunk list v2";
const TREE_CONTEXT: &str = "musicfs 2026-11 tree v1";
const SNAPSHOT_CONTEXT: &str = "musicfs 2026-11 snapshot v1";

impl ContentId {
    /// Hashes a serialized chunk list.
    pub fn of_encoded(bytes: &[u8]) -> Self {
        Self(derived(CONTENT_CONTEXT, bytes))
    }
}

impl TreeId {
    /// Hashes a serialized tree.
    pub fn of_encoded(bytes: &[u8]) -> Self {
        Self(derived(TREE_CONTEXT, bytes))
    }
}

impl SnapshotId {
    /// Hashes a serialized snapshot record.
    pub fn of_encoded(bytes: &[u8]) -> Self {
        Self(derived(SNAPSHOT_CONTEXT, bytes))
    }
}

fn derived(context: &str, bytes: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    hasher.update(bytes);
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_id_is_plain_blake3() {
        assert_eq!(
            ChunkId::of(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn hex_round_trip_and_kinds_differ() {
        let c = ContentId::of_encoded(b"x");
        assert_eq!(ContentId::from_hex(&c.to_hex()), Some(c));
        assert_ne!(c.as_bytes(), TreeId::of_encoded(b"x").as_bytes());
        assert_eq!(ContentId::from_hex("zz"), None);
    }
}
