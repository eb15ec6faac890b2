"""Creating and removing what wgfsim writes: never through a symlink, never what we did not write.

Every file and folder a run or a sweep writes beside its outputs goes through
this module: the lock ``NAME.h5.lock`` (:func:`open_lock`), the checkpoint
folder ``NAME.ckpt`` (:func:`make_owned_dir`), its ``run<r>.npz`` and the
sweep's ``sweep.json`` (:func:`write_atomic`).  Two rules:

- **No symlink is followed.**  Where others can write into the output folder
  (a shared scratch space), a symlink planted at one of our names would
  redirect our writes outside it.  Files are opened with ``O_NOFOLLOW`` (and
  temporary files with ``O_EXCL``), folders are checked with ``lstat``; a
  symlink at one of our names is refused with :class:`UnsafePathError` (a
  ``ValueError``: exit code 2), naming it.
- **Only what carries our marker is removed.**  A folder we create holds the
  marker file ``.wgfsim-owner`` (JSON naming what it belongs to);
  :func:`remove_owned_dir` removes only such a folder, and inside it only the
  names we write (``run<r>.npz`` and their ``.tmp``), then the folder if it
  is empty.  A folder of the same name that the user made (or a sweep named
  ``NAME.ckpt``) is refused, never removed.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import stat

__all__ = ["UnsafePathError", "MARKER", "open_lock", "write_atomic", "make_owned_dir", "is_owned_dir",
           "remove_owned_dir", "check_not_symlink"]

MARKER = ".wgfsim-owner"
# the files wgfsim writes inside a folder it owns (checkpoints and their temporaries)
_OWNED_FILE = re.compile(r"run\d+\.npz(\.tmp)?")


class UnsafePathError(ValueError):
    """A name wgfsim writes is taken by a symlink, or by something wgfsim did not write."""


def _is_link(path: pathlib.Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def check_not_symlink(path, what: str) -> None:
    """Refuse (:class:`UnsafePathError`) when ``path`` is a symlink."""
    path = pathlib.Path(path)
    if _is_link(path):
        raise UnsafePathError(
            f"{path}: is a symlink (to {os.readlink(path)!r}); wgfsim writes its {what} here and never follows a "
            "symlink out of the output folder: remove the link, or use another output folder"
        )


def _refuse_loop(path: pathlib.Path, what: str, err: OSError):
    if err.errno == errno.ELOOP or _is_link(path):
        check_not_symlink(path, what)
    raise err


def open_lock(path) -> int:
    """A read-write descriptor on the lock file ``path`` (created 0644 if absent), never through a symlink."""
    path = pathlib.Path(path)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        _refuse_loop(path, "lock", err)
        raise


def _create_exclusive(tmp: pathlib.Path, what: str) -> int:
    """A new file at ``tmp`` (``O_EXCL|O_NOFOLLOW``); a plain leftover of ours (a killed write) is replaced."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(3):
        try:
            return os.open(tmp, flags, 0o644)
        except FileExistsError:
            check_not_symlink(tmp, what)
            st = os.lstat(tmp)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePathError(f"{tmp}: is not a regular file; wgfsim writes its {what} here: remove it") \
                    from None
            os.unlink(tmp)  # a temporary a killed write of ours left: O_EXCL again, in case of a race
    raise UnsafePathError(f"{tmp}: kept reappearing while wgfsim created its {what} there")


def write_atomic(path, write, *, what: str, fsync: bool = True) -> None:
    """Write a file at ``path`` atomically through ``path.tmp``: a kill leaves the old file or the new one.

    ``write(fh)`` writes the content to a binary file object.  The temporary
    is created with ``O_EXCL|O_NOFOLLOW``; a symlink at ``path`` itself is
    refused (``os.replace`` would replace the link, but its presence means
    someone else writes our names).
    """
    path = pathlib.Path(path)
    check_not_symlink(path, what)
    tmp = path.with_name(path.name + ".tmp")
    fd = _create_exclusive(tmp, what)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _marker_owner(folder: pathlib.Path):
    try:
        fd = os.open(folder / MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        try:
            info = json.loads(fh.read(4096).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
    return info.get("owner") if isinstance(info, dict) else None


def is_owned_dir(folder, owner: str) -> bool:
    """Whether ``folder`` is a real folder (not a symlink) carrying our marker for ``owner``.

    A folder written by wgfsim before the marker existed is recognised by its
    content: not empty, and only checkpoint names (``run<r>.npz``) in it.
    """
    folder = pathlib.Path(folder)
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    found = _marker_owner(folder)
    if found is not None:
        return found == owner
    names = os.listdir(folder)
    return bool(names) and all(_OWNED_FILE.fullmatch(n) for n in names)


def _refuse_foreign(folder: pathlib.Path, owner: str, what: str):
    check_not_symlink(folder, what)
    kind = "a folder" if folder.is_dir() else "a file"
    raise UnsafePathError(
        f"{folder}: {kind} that wgfsim did not write for {owner} is in the way of its {what}; wgfsim never "
        "removes what it did not write: move or rename it, or use another output folder"
    )


def make_owned_dir(folder, owner: str, what: str) -> pathlib.Path:
    """Create ``folder`` with our marker for ``owner``; an existing one must be ours (else refused)."""
    folder = pathlib.Path(folder)
    try:
        os.mkdir(folder, 0o755)
    except FileExistsError:
        if not is_owned_dir(folder, owner):
            _refuse_foreign(folder, owner, what)
        if _marker_owner(folder) is not None:
            return folder
    write_atomic(folder / MARKER, lambda fh: fh.write(json.dumps({"owner": owner}).encode()), what="marker",
                 fsync=False)
    return folder


def remove_owned_dir(folder, owner: str, what: str, *, strict: bool = True) -> bool:
    """Remove ``folder`` when it is ours: only our file names inside it, then the folder if it is then empty.

    A folder (or file, or symlink) at ``folder`` that is not ours is refused
    with :class:`UnsafePathError` (``strict``) or left alone (returns False).
    Returns True when nothing of ours is left there.
    """
    folder = pathlib.Path(folder)
    if not os.path.lexists(folder):
        return True
    if not is_owned_dir(folder, owner):
        if strict:
            _refuse_foreign(folder, owner, what)
        return False
    for name in os.listdir(folder):
        if name in (MARKER, MARKER + ".tmp") or _OWNED_FILE.fullmatch(name):
            try:
                os.unlink(folder / name)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(folder)
    except OSError:  # something else was put in it: leave the folder and that
        return False
    return True
