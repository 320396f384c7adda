"""An on-disk cache of derived data (tokenised splits, trained tokenizers), one directory per key.

An entry is a directory holding the files a build function wrote plus ``meta.json`` with the full key
and the SHA-256, size and modification time of every file. Files are hashed once, when built; a load
checks sizes and times (cheap, on every rank at every start) and re-hashes only a file stamped no
earlier than meta.json, where an edit in the same clock tick would keep its time ("racy", as git does). An entry is used only when the key
matches and every file passes; anything else (a missing or unreadable meta.json, another key, a
missing, truncated or altered file) is reported and rebuilt, never used. Builds happen under a file lock, so concurrent
processes (DDP ranks, parallel runs) build an entry once and the others wait, then reuse it; a build
is written to a temporary directory and renamed into place, so a crash never leaves a half entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable

from filelock import FileLock

META = "meta.json"
FORMAT = 2  # bump when the layout of entries changes: old entries then fail validation and rebuild


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached(root: str | Path, kind: str, key: dict, build: Callable[[Path], dict]) -> tuple[Path, dict]:
    """The directory of a valid entry for ``key`` and its recorded stats, building it if needed.

    ``build(directory)`` writes the entry's files into ``directory`` and returns a JSON-able dict of
    stats, stored in meta.json.
    """
    key = {"format": FORMAT, "kind": kind, **key}
    base = Path(root).expanduser() / kind
    base.mkdir(parents=True, exist_ok=True)
    entry = base / key_digest(key)
    if validate(entry, key) is None:  # the common case: no lock, so ranks verify in parallel
        return entry, _stats(entry)
    with FileLock(str(entry) + ".lock"):
        problem = validate(entry, key)  # another process may have built it while we waited
        if problem is None:
            return entry, _stats(entry)
        if problem != "absent":
            warnings.warn(f"cache entry {entry} is unusable ({problem}); rebuilding it", stacklevel=2)
        scratch = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=base))
        try:
            stats = build(scratch)
            files = {p.name: _fingerprint(p) for p in sorted(scratch.iterdir()) if p.is_file()}
            meta = {"key": key, "files": files, "stats": stats}
            (scratch / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
            if entry.exists():
                shutil.rmtree(entry)
            os.replace(scratch, entry)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
        return entry, stats


def _stats(entry: Path) -> dict:
    return json.loads((entry / META).read_text())["stats"]


def validate(entry: Path, key: dict) -> str | None:
    """None when ``entry`` is a complete entry for ``key``; otherwise what is wrong with it."""
    if not entry.exists():
        return "absent"
    try:
        meta = json.loads((entry / META).read_text())
        files, saved_key = meta["files"], meta["key"]
        built_ns = (entry / META).stat().st_mtime_ns
        meta["stats"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"meta.json missing or unreadable: {type(error).__name__}"
    if saved_key != key:
        return "it was built for another key"
    for name, recorded in files.items():
        path = entry / name
        if not path.is_file():
            return f"{name} is missing"
        stat = path.stat()
        # a file stamped no earlier than meta.json could be edited within the same clock tick unseen
        racy = recorded["mtime_ns"] >= built_ns
        if (stat.st_size, stat.st_mtime_ns) != (recorded["size"], recorded["mtime_ns"]) or \
                (racy and file_sha256(path) != recorded["sha256"]):
            return f"{name} does not match its recorded checksum, size or time"
    return None


def _fingerprint(path: Path) -> dict:
    stat = path.stat()
    return {"sha256": file_sha256(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
