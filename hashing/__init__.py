"""One-pass hashing: digests are computed while bytes move, never in a second read."""

from hashing.stream import (
    DEFAULT_ALGORITHMS,
    Digests,
    HashingReader,
    HashingWriter,
    copy_hashed,
    hash_file,
)

__all__ = ["DEFAULT_ALGORITHMS", "Digests", "HashingReader", "HashingWriter", "copy_hashed", "hash_file"]
