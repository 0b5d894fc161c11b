"""Crash-safe file writing: every file nmref writes goes through :func:`atomic_write`.

The data is written to a temporary file in the destination directory, flushed and fsynced,
then renamed over the destination (``os.replace`` is atomic on POSIX and Windows), so a crash
leaves either the old file or the new one, never a torn mix.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "safetensors_bytes"]


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Context manager yielding a file object; on success the file replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); a result file gets the mode a plain open() would give it
        # (0666 less the umask), or keeps the mode of the file it replaces
        try:
            mode_bits = path.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode_bits = 0o666 & ~umask
        os.chmod(tmp, mode_bits)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_text(path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def safetensors_bytes(arrays: dict, metadata: dict | None = None) -> bytes:
    """``safetensors.numpy.save(arrays, metadata)`` with a canonical header: the same arrays and
    metadata give the same bytes in every process. (safetensors writes the metadata in the order of a
    Rust hash map, which differs between processes, so equal checkpoints would differ in SHA-256.)

    The header is the JSON object of the tensor entries, in safetensors' order, and ``__metadata__``
    with its keys sorted, compact, padded with spaces to a multiple of 8 bytes; the data are untouched.
    """
    import struct

    from safetensors.numpy import save

    blob = save(arrays, metadata=metadata)
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    if meta is not None:
        header = {"__metadata__": dict(sorted(meta.items())), **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + n:]


def atomic_write_figure(fig, path, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG atomically (rendered in memory, then temp file + rename)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
