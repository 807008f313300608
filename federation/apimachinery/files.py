"""Files that hold secrets or must never be seen half-written: tokens, kubeconfigs, private keys.

Guarantees of :func:`write_atomically`: a reader of ``path`` sees the old content or the new, never
a part; the file has ``mode`` (0600 unless said otherwise) from its first byte, so a secret is never
readable by others even for a moment; a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes | str, *, mode: int = 0o600) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file renamed over it."""
    content = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(tmp, mode)  # O_CREAT's mode passes through the umask; the file gets exactly ``mode``
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
