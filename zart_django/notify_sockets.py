"""Push wake-ups on SQLite: a UNIX datagram socket per idle worker, in a folder beside the database.

Each worker binds a socket in the folder ``<database file>-wakeups`` (when that path is too long
for ``AF_UNIX``, a folder in the temporary directory named by a hash of the database's path) and
renames it ``idle-<id>`` while it can take work, ``busy-<id>`` while it cannot. A write that makes
work due sends, once it commits, one empty datagram to one idle worker per due execution, chosen
at random; a worker woken while busy passes the wake-up on to an idle one. Sends never block: a
full queue, a missing socket or one a killed worker left behind (removed then) is skipped.

The folder gets the database folder's permissions without the world's write bit, the sockets the
same without execute bits: whoever may write the database's folder may wake its workers.
In-memory databases, Windows (no datagram ``AF_UNIX``) and a path too long even in the temporary
directory have no wake-ups: workers poll, as they always do besides.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import random
import secrets
import select
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.db import transaction

logger = logging.getLogger("zart_django")

FOLDER_SUFFIX = "-wakeups"
IDLE, BUSY = "idle-", "busy-"
_ID_LENGTH = 12  # hex digits of a worker's socket id
_NAME_LENGTH = len(IDLE) + _ID_LENGTH
SUN_PATH_MAX = 103 if sys.platform == "darwin" else 107
"""The longest socket path ``AF_UNIX`` takes, in bytes, without its final NUL."""
MAX_HOPS = 2
"""How many times a wake-up that reached a busy worker is passed on before it is dropped."""
_WAIT = 0.5  # seconds a receiver waits for a datagram before it looks whether it should stop


def supported() -> bool:
    """Whether this platform has datagram UNIX sockets (not Windows)."""
    return os.name == "posix" and hasattr(socket, "AF_UNIX")


def database_file(name: object) -> Path | None:
    """The real path of the SQLite database ``NAME`` (the same for every process, whatever
    symbolic links it reached it through), None for an in-memory one."""
    text = str(name or "")
    if not text or text == ":memory:" or "mode=memory" in text:
        return None
    if text.startswith("file:"):
        text = unquote(urlsplit(text).path)
    return Path(os.path.realpath(text))


@functools.cache
def folder_for(name: object) -> Path | None:
    """The wake-up folder of the SQLite database ``NAME``: beside it, or in the temporary
    directory when that path is too long for a socket; None when there are no wake-ups."""
    database = database_file(name)
    if database is None or not supported():
        return None
    beside = database.parent / f"{database.name}{FOLDER_SUFFIX}"
    if _fits(beside):
        return beside
    digest = hashlib.sha256(os.fsencode(database)).hexdigest()[:16]
    short = Path(tempfile.gettempdir()) / f"zart-{digest}"
    if _fits(short):
        return short
    logger.warning(
        "no wake-up sockets for %s: its path is too long for a UNIX socket; workers poll", database
    )
    return None


def _fits(folder: Path) -> bool:
    return len(os.fsencode(folder)) + 1 + _NAME_LENGTH <= SUN_PATH_MAX


@functools.cache
def channel_for(alias: str, name: object) -> SocketChannel | None:
    """The wake-up channel of the SQLite database ``NAME`` of connection ``alias``, if it has one."""
    folder = folder_for(name)
    database = database_file(name)
    if folder is None or database is None:
        return None
    return SocketChannel(alias, folder, database.parent)


class SocketChannel:
    """The wake-up channel of one SQLite database: ``send`` from writers, ``receiver`` for workers."""

    def __init__(self, alias: str, folder: Path, database_folder: Path) -> None:
        self.alias = alias
        self.folder = folder
        self.database_folder = database_folder

    def send(self, count: int) -> None:
        """Wake up to ``count`` idle workers once the current transaction commits."""
        transaction.on_commit(functools.partial(ring, self.folder, count), using=self.alias)

    def receiver(self, name: str) -> SocketReceiver:
        return SocketReceiver(self.folder, self.database_folder, name)


_sender: socket.socket | None = None
_sender_lock = threading.Lock()


def _sending_socket() -> socket.socket:
    """This process's unbound, non-blocking datagram socket for wake-ups."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _sender.setblocking(False)
        return _sender


def ring(folder: Path, count: int, *, hops: int = 0, besides: str = "") -> int:
    """Send a wake-up to up to ``count`` idle workers in ``folder`` (not to the socket named
    ``besides``), picked at random; returns how many were sent. Never raises, never blocks."""
    try:
        with os.scandir(folder) as entries:
            idle = [e for e in entries if e.name.startswith(IDLE) and e.name != besides]
    except OSError:  # no folder: no worker ever listened here
        return 0
    random.shuffle(idle)
    sent = 0
    for entry in idle:
        if sent == count:
            break
        sent += _send(entry, hops)
    return sent


def _send(entry: os.DirEntry[str], hops: int) -> bool:
    """One datagram to ``entry``'s socket; a socket left by a dead worker is removed."""
    try:
        _sending_socket().sendto(bytes([hops]), entry.path)
    except ConnectionRefusedError:
        _remove_stale(entry)
        return False
    except OSError as exc:  # gone since the listing, a full queue, not ours to write
        logger.debug("wake-up to %s not sent: %s", entry.path, exc)
        return False
    return True


def _remove_stale(entry: os.DirEntry[str]) -> bool:
    """Remove the socket nobody receives on, if the path still names that same file."""
    try:
        if os.lstat(entry.path).st_ino != entry.inode():
            return False
        os.unlink(entry.path)
    except OSError:
        return False
    logger.debug("removed %s: the worker that bound it is gone", entry.path)
    return True


def sweep(folder: Path) -> int:
    """Remove the sockets in ``folder`` that nobody receives on (left by killed workers; a
    sender meets only the idle ones); returns how many. Connecting sends nothing."""
    removed = 0
    try:
        with os.scandir(folder) as entries:
            named = [e for e in entries if e.name.startswith((IDLE, BUSY))]
    except OSError:
        return 0
    for entry in named:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(entry.path)
            except ConnectionRefusedError:
                removed += _remove_stale(entry)
            except OSError:
                pass
    return removed


class SocketReceiver:
    """A worker's socket in the wake-up folder, named idle or busy as ``ready`` says."""

    def __init__(self, folder: Path, database_folder: Path, worker: str) -> None:
        self.folder = folder
        self.database_folder = database_folder
        self.worker = worker
        self._ready = False
        self._socket: socket.socket | None = None
        self._id = secrets.token_hex(_ID_LENGTH // 2)
        self._lock = threading.Lock()

    def open(self) -> bool:
        """Bind the socket (making the folder if need be); False, with a warning, if it cannot."""
        try:
            mode = _make_folder(self.folder, self.database_folder)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(self._path()))
            os.chmod(self._path(), mode & 0o666)
        except OSError as exc:
            logger.warning(
                "worker %s: no wake-up socket in %s (%s); polling only",
                self.worker,
                self.folder,
                exc,
            )
            return False
        self._socket = sock
        logger.debug("worker %s: listening on %s", self.worker, self._path())
        sweep(self.folder)
        return True

    def _path(self) -> Path:
        return self.folder / f"{IDLE if self._ready else BUSY}{self._id}"

    def ready(self, ready: bool) -> None:
        """Name the socket idle (``ready``: wake-ups come here) or busy (they go elsewhere)."""
        with self._lock:
            if ready == self._ready or self._socket is None:
                self._ready = ready
                return
            before = self._path()
            self._ready = ready
            try:
                os.rename(before, self._path())
            except OSError as exc:
                logger.warning("worker %s: wake-up socket not renamed: %s", self.worker, exc)

    def run(self, on_wake: Callable[[], None], stopped: threading.Event) -> None:
        """Call ``on_wake`` for the wake-ups that arrive while ready, until ``stopped``; pass on
        those that arrive while busy."""
        sock = self._socket
        if sock is None:
            return
        while not stopped.is_set():
            readable, _, _ = select.select([sock], [], [], _WAIT)
            if readable:
                self._received(sock.recv(16), on_wake)

    def _received(self, datagram: bytes, on_wake: Callable[[], None]) -> None:
        with self._lock:
            ready, name = self._ready, self._path().name
        if ready:
            logger.debug("worker %s: woken by a wake-up socket", self.worker)
            on_wake()
            return
        hops = datagram[0] if datagram else MAX_HOPS
        if hops < MAX_HOPS:
            ring(self.folder, 1, hops=hops + 1, besides=name)

    def close(self) -> None:
        """Close and remove the socket (and the folder, if it is the last)."""
        with self._lock:
            if self._socket is None:
                return
            self._socket.close()
            self._socket = None
            path = self._path()
        for remove in (lambda: os.unlink(path), lambda: os.rmdir(self.folder)):
            try:
                remove()
            except OSError:
                pass


def _make_folder(folder: Path, database_folder: Path) -> int:
    """Create ``folder`` with the database folder's mode minus the world's write bit, or check
    the one there (a real folder, owned by us or by the database folder's owner, not
    world-writable); returns its mode."""
    parent = os.stat(database_folder)
    mode = stat.S_IMODE(parent.st_mode) & 0o775
    try:
        os.mkdir(folder, mode)
        os.chmod(folder, mode)
        return mode
    except FileExistsError:
        pass
    there = os.lstat(folder)
    owners = {os.geteuid(), parent.st_uid}
    if not stat.S_ISDIR(there.st_mode) or there.st_uid not in owners or there.st_mode & 0o002:
        raise PermissionError(f"{folder} is not a folder of ours, or the world may write it")
    return stat.S_IMODE(there.st_mode)
