"""The transparency log's Merkle tree stored as tiles (the C2SP tlog-tiles layout); pure, no I/O.

A tile at level L, index N holds, concatenated, the 32-byte hashes of the complete level-8L nodes
N*256 .. N*256+w-1 (level 0: the leaf hashes). A full tile (w = 256) never changes; the right edge of each
level is a partial tile, stored under its width, so every key is written once and a reader that knows the
tree size knows the exact key of every tile it needs. Any node of the tree is computed from one tile, so a
proof reads O(log n) tiles whatever the tree's size, and a sequencer extending the tree reads only the
right-edge tiles (at most one per level) and writes one per changed level.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.custody.merkle import HASH_SIZE, MerkleTree, node_hash

HEIGHT = 8
WIDTH = 1 << HEIGHT


def tile_name(level: int, index: int, width: int) -> str:
    """Key suffix of a tile: `<level>/<index>` for a full tile, `<level>/<index>.p<width>` for a partial one."""
    base = f"{level}/{index:09d}"
    return base if width == WIDTH else f"{base}.p{width:03d}"


def tile_width(size: int, level: int, index: int) -> int:
    """How many hashes tile (level, index) holds in a tree of `size` leaves (0: it does not exist yet)."""
    return max(0, min(WIDTH, (size >> (HEIGHT * level)) - index * WIDTH))


def right_edge(size: int) -> list[tuple[int, int, int]]:
    """(level, index, width) of the partial tile at each level of a tree of `size` leaves."""
    out = []
    level = 0
    while (n := size >> (HEIGHT * level)) > 0:
        if n % WIDTH:
            out.append((level, n // WIDTH, n % WIDTH))
        level += 1
    return out


def last_tiles(size: int) -> list[tuple[int, int, int]]:
    """(level, index, width) of the tile holding the last node at each level of a tree of `size` leaves: what
    every proof against that tree reads at its right edge (the bottom one is always new with that size)."""
    out = []
    level = 0
    while (n := size >> (HEIGHT * level)) > 0:
        index = (n - 1) // WIDTH
        out.append((level, index, tile_width(size, level, index)))
        level += 1
    return out


def _split(data: bytes) -> list[bytes]:
    if len(data) % HASH_SIZE:
        raise ValueError(f"a tile is a multiple of {HASH_SIZE} bytes, got {len(data)}")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def subtree_levels(hashes: list[bytes]) -> list[list[bytes]]:
    """levels[r][j]: the node over hashes j*2**r .. (j+1)*2**r - 1, for every complete such node."""
    levels = [list(hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return levels


class TileWriter:
    """Extends a tiled tree: give it the right-edge tiles of the current size, append leaves, take the tiles."""

    def __init__(self, size: int, edges: dict[int, bytes]) -> None:
        """`edges[level]` is the content of that level's partial tile (see `right_edge`); others are empty."""
        self.size = size
        self._cur: list[list[bytes]] = []
        for level, _index, width in right_edge(size):
            got = _split(edges.get(level, b""))
            if len(got) != width:
                raise ValueError(f"right-edge tile at level {level} has {len(got)} hashes, expected {width}")
        top = 0
        while size >> (HEIGHT * top):
            top += 1
        for level in range(top + 1):
            self._cur.append(_split(edges.get(level, b"")) if tile_width(size, level, 0) else [])
        self._dirty: set[int] = set()
        self._out: dict[str, bytes] = {}

    def append(self, leaf: bytes) -> None:
        if len(leaf) != HASH_SIZE:
            raise ValueError("leaf hash must be 32 bytes")
        h, level = bytes(leaf), 0
        self.size += 1
        while True:
            if level == len(self._cur):
                self._cur.append([])
            cur = self._cur[level]
            cur.append(h)
            self._dirty.add(level)
            if len(cur) < WIDTH:
                break
            index = ((self.size >> (HEIGHT * level)) - 1) // WIDTH
            self._out[tile_name(level, index, WIDTH)] = b"".join(cur)
            h = subtree_levels(cur)[HEIGHT][0]
            self._cur[level] = []
            level += 1

    def tiles(self) -> dict[str, bytes]:
        """Every tile the appends created or changed: full tiles, and the new partial tile of each changed level."""
        out = dict(self._out)
        for level in sorted(self._dirty):
            cur = self._cur[level]
            if cur:
                index = (self.size >> (HEIGHT * level)) // WIDTH
                out[tile_name(level, index, len(cur))] = b"".join(cur)
        return out

    def edges(self) -> dict[int, bytes]:
        """The right-edge tiles after the appends: what the next writer starts from."""
        return {level: b"".join(c) for level, c in enumerate(self._cur) if c}


class TiledTree(MerkleTree):
    """A read-only tree of `size` leaves whose nodes come from tiles: roots and RFC 9162 proofs without the leaves.

    `fetch(name)` returns a tile's bytes by `tile_name`; each tile is fetched once.
    """

    def __init__(self, size: int, fetch: Callable[[str], bytes]) -> None:
        super().__init__()
        self.size = size
        self._fetch = fetch
        self._tiles: dict[tuple[int, int], list[list[bytes]]] = {}

    def append(self, leaf: bytes) -> int:  # pragma: no cover - read-only view
        raise TypeError("a TiledTree is read-only")

    def _tile(self, level: int, index: int) -> list[list[bytes]]:
        got = self._tiles.get((level, index))
        if got is None:
            width = tile_width(self.size, level, index)
            hashes = _split(self._fetch(tile_name(level, index, width)))
            if len(hashes) != width:
                raise ValueError(f"tile {tile_name(level, index, width)} holds {len(hashes)} hashes, not {width}")
            got = self._tiles[(level, index)] = subtree_levels(hashes)
        return got

    def _node(self, level: int, i: int) -> bytes:
        tl, r = divmod(level, HEIGHT)
        first = i << r  # index of the node's first level-8*tl node
        levels = self._tile(tl, first // WIDTH)
        return levels[r][(first % WIDTH) >> r]
