"""What on a seized card or folder is offered as an original: regular files only, read by inode.

A seized card is hostile input. It may hold a symbolic link named `DCIM0001.MP4` pointing at the
examiner's private signing key or `/etc/passwd`, a FIFO that blocks a reader for ever, device nodes,
sockets, directory loops (bind mounts), trees nested thousands deep, hard links to files in
CUSTODY_HOME, and it may change between the moment it is listed and the moment a file is read.
So:

* the walk never follows a symbolic link: a link is an *item of the seizure*, recorded with its
  name and the text of its target (`link_recorded`), and the target's bytes are never read;
* FIFOs, sockets and devices are refused with a status naming what they are (`refused_fifo`...);
* nothing in CUSTODY_HOME is ingestible: a source path resolving inside it, and any file or folder
  whose device and inode belong to the home (a hard link to the signing key, a bind mount of the
  home), are `refused_custody_home`;
* directory loops (`refused_loop`), other filesystems mounted inside the tree
  (`refused_other_filesystem`) and trees deeper than MAX_DEPTH (`refused_too_deep`) are recorded,
  not followed; the walk is iterative and opens folders relative to their parent (no path-length
  or recursion limit is reached);
* a file is opened component by component with O_NOFOLLOW, as an O_PATH handle first (so nothing
  but a regular file is ever really opened: opening a device can have side effects), its fstat must
  show a regular file with the device and inode the walk saw, and only then is it reopened for
  reading through `/proc/self/fd` — the bytes stored are those of the inode that was checked,
  whatever the card's names point at by then (`refused_changed` otherwise).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.text import escape_invisible

MAX_DEPTH = 32
HOME_SCAN_LIMIT = 200_000  # entries of CUSTODY_HOME fingerprinted by inode (keys and secrets first)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = ((stat.S_ISFIFO, "refused_fifo", "a FIFO (named pipe): not a file, not read"),
          (stat.S_ISSOCK, "refused_socket", "a socket: not a file, not read"),
          (stat.S_ISCHR, "refused_device", "a character device: not a file, not read"),
          (stat.S_ISBLK, "refused_device", "a block device: not a file, not read"))


@dataclass(frozen=True)
class Item:
    """One entry found: a regular file to store, or something recorded / refused with a status."""

    top: Path  # the folder the walk started from (for a file argument: its folder)
    parts: tuple[str, ...]  # components below `top`
    status: str  # "file", "link_recorded", "refused_*", "unreadable"
    message: str = ""
    size: int = 0
    dev: int = 0
    ino: int = 0
    target: str | None = None  # a link's target text, escaped

    @property
    def path(self) -> Path:
        return self.top.joinpath(*self.parts) if self.parts else self.top

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else self.top.name

    @property
    def source_path(self) -> str:
        """Where it was on the card, as recorded: the offered folder's name and the path below it, escaped."""
        return escape_invisible("/".join((self.top.name, *self.parts)))

    def as_record(self) -> dict[str, str]:
        rec = {"path": self.source_path, "status": self.status, "message": self.message}
        if self.target is not None:
            rec["target"] = self.target
        return rec


@dataclass
class Walk:
    # the home's fingerprint the walk checked against: storing pins each file to the inode walked, so it
    # checks against the same one instead of scanning the home again (~15 us an entry; the doc cache grows
    # with every event)
    guard: HomeGuard
    files: list[Item] = field(default_factory=list)
    others: list[Item] = field(default_factory=list)  # links recorded and things refused


class HomeGuard:
    """Recognises CUSTODY_HOME by path and by device+inode (hard links, bind mounts)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(os.path.realpath(home))
        self.inodes: set[tuple[int, int]] = set()
        if not self.home.exists():
            return
        first = [self.home / "keys", self.home / "secrets", self.home / "stack", self.home]
        seen = 0
        scanned: set[tuple[int, int]] = set()
        for top in first:
            stack = [top]
            while stack and seen < HOME_SCAN_LIMIT:
                d = stack.pop()
                try:
                    st = os.lstat(d)
                    self.inodes.add((st.st_dev, st.st_ino))
                    if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in scanned:
                        continue
                    scanned.add((st.st_dev, st.st_ino))
                    with os.scandir(d) as it:
                        for e in it:
                            seen += 1
                            try:
                                est = e.stat(follow_symlinks=False)
                            except OSError:
                                continue
                            self.inodes.add((est.st_dev, est.st_ino))
                            if stat.S_ISDIR(est.st_mode) and (est.st_dev, est.st_ino) != (st.st_dev, st.st_ino):
                                stack.append(Path(e.path))
                except OSError:
                    continue

    def inside(self, path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return real == self.home or self.home in real.parents

    def holds(self, st: os.stat_result) -> bool:
        return (st.st_dev, st.st_ino) in self.inodes


def _kind(st: os.stat_result) -> tuple[str, str] | None:
    for test, status, message in _KINDS:
        if test(st.st_mode):
            return status, message
    return None


def _open_dir(top_fd: int, parts: tuple[str, ...]) -> int:
    fd = os.dup(top_fd)
    try:
        for comp in parts:
            nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _walk_dir(top: Path, guard: HomeGuard, out: Walk) -> None:
    top_st = os.lstat(top)
    visited = {(top_st.st_dev, top_st.st_ino)}
    top_fd = os.open(top, _DIR_FLAGS)
    try:
        pending: list[tuple[str, ...]] = [()]
        while pending:
            parts = pending.pop()
            try:
                dfd = _open_dir(top_fd, parts)
            except OSError as exc:
                out.others.append(Item(top, parts, "unreadable", f"folder could not be opened ({exc.strerror})"))
                continue
            try:
                with os.scandir(dfd) as it:
                    entries = sorted(it, key=lambda e: e.name)
                subdirs = []
                for e in entries:
                    sub = (*parts, e.name)
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError as exc:
                        out.others.append(Item(top, sub, "unreadable", f"could not be examined ({exc.strerror})"))
                        continue
                    item = _classify(top, sub, st, dfd, guard, top_st.st_dev)
                    if item.status != "dir":
                        (out.files if item.status == "file" else out.others).append(item)
                    elif (st.st_dev, st.st_ino) in visited:
                        out.others.append(Item(top, sub, "refused_loop", "folder already visited (a directory "
                                                                       "loop, e.g. a bind mount): not followed"))
                    elif len(sub) > MAX_DEPTH:
                        out.others.append(Item(top, sub, "refused_too_deep", f"folders nested deeper than "
                                                                           f"{MAX_DEPTH}: not followed"))
                    else:
                        visited.add((st.st_dev, st.st_ino))
                        subdirs.append(sub)
                pending.extend(reversed(subdirs))  # depth-first, in name order
            finally:
                os.close(dfd)
    finally:
        os.close(top_fd)


def _classify(top: Path, parts: tuple[str, ...], st: os.stat_result, dir_fd: int | None, guard: HomeGuard,
              top_dev: int) -> Item:
    if guard.holds(st):
        return Item(top, parts, "refused_custody_home", "is (a link to) a file or folder of CUSTODY_HOME: never "
                                                        "ingested", dev=st.st_dev, ino=st.st_ino)
    if stat.S_ISLNK(st.st_mode):
        try:
            raw = os.readlink(parts[-1] if dir_fd is not None else top.joinpath(*parts), dir_fd=dir_fd)
            target = escape_invisible(os.fsdecode(raw))
        except OSError:
            target = "(unreadable)"
        return Item(top, parts, "link_recorded", "symbolic link: recorded with its target text; the target "
                                                 "was not read", target=target)
    if stat.S_ISDIR(st.st_mode):
        if st.st_dev != top_dev:
            return Item(top, parts, "refused_other_filesystem", "another filesystem is mounted here: not "
                                                                "followed")
        return Item(top, parts, "dir")
    kind = _kind(st)
    if kind:
        return Item(top, parts, kind[0], kind[1])
    if not stat.S_ISREG(st.st_mode):
        return Item(top, parts, "unreadable", "not a regular file")
    return Item(top, parts, "file", size=st.st_size, dev=st.st_dev, ino=st.st_ino)


def walk_sources(paths: list[Path], home: Path) -> Walk:
    """Classify everything under the offered paths (sorted, depth-first), reading no file's bytes."""
    guard = HomeGuard(home)
    out = Walk(guard=guard)
    for p in paths:
        p = Path(os.path.abspath(p))
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            raise UsageError(f"{p}: no such file or directory") from None
        if stat.S_ISLNK(st.st_mode):
            raise UsageError(f"{p} is a symbolic link (to {escape_invisible(os.readlink(p))!r}); links are never "
                             "followed: give the real path")
        if guard.inside(p) or guard.holds(st):
            raise UsageError(f"{p} is inside CUSTODY_HOME ({guard.home}): keys, secrets and stack data are never "
                             "evidence")
        if stat.S_ISDIR(st.st_mode):
            _walk_dir(p, guard, out)
            continue
        item = _classify(p.parent, (p.name,), st, None, guard, st.st_dev)
        if item.status in ("refused_fifo", "refused_socket", "refused_device", "unreadable"):
            raise UsageError(f"{p}: {item.message}")
        out.files.append(item)
    if not out.files and not out.others:
        raise UsageError("no files to ingest")
    return out


def walk_files(paths: list[Path], home: Path | None = None) -> list[Path]:
    """Regular files under `paths` (links and special files left out): for callers that only list."""
    from pipeline.settings import default_home

    return [i.path for i in walk_sources(paths, home or default_home()).files]


class Changed(Exception):
    """The card changed between walk and open: the name no longer leads to the regular file that was listed."""


@contextlib.contextmanager
def open_pinned(item: Item, guard: HomeGuard | None = None) -> Iterator[Path]:
    """A path that reads exactly the inode the walk listed (`/proc/self/fd/N`), valid inside the block.

    Every later open of the yielded path, by this process, reopens that same checked inode, so code
    that takes a path (the store, the probe, the resumable journal) reads the file that was checked.
    """
    pfd = -1
    dfd = -1
    try:
        top_fd = os.open(item.top, _DIR_FLAGS)
        try:
            dfd = _open_dir(top_fd, item.parts[:-1])
        finally:
            os.close(top_fd)
        pfd = os.open(item.parts[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        st = os.fstat(pfd)
    except OSError as exc:
        if pfd >= 0:
            os.close(pfd)
        raise Changed(f"could not be reopened ({exc.strerror}); the card changed since it was listed") from None
    finally:
        if dfd >= 0:
            os.close(dfd)
    try:
        if not stat.S_ISREG(st.st_mode):
            raise Changed("is no longer a regular file (the card changed since it was listed): not read")
        if (st.st_dev, st.st_ino) != (item.dev, item.ino):
            raise Changed("now names another file than the one listed (the card changed): not read")
        if guard is not None and guard.holds(st):
            raise Changed("now names a file of CUSTODY_HOME: never ingested")
        rfd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        try:
            if (os.fstat(rfd).st_dev, os.fstat(rfd).st_ino) != (st.st_dev, st.st_ino):
                raise Changed("reopened as another file: not read")
            yield Path(f"/proc/self/fd/{rfd}")
        finally:
            os.close(rfd)
    finally:
        os.close(pfd)
