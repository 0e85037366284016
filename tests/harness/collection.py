"""Make this checkout importable and loadable as ``ansible_collections.lamassuiot.postgres``."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_DIR = ROOT / ".collections"


def ensure_collection_path() -> str:
    """Link the checkout under ``.collections/ansible_collections/lamassuiot/postgres``; return the search path."""
    link = COLLECTIONS_DIR / "ansible_collections" / "lamassuiot" / "postgres"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            link.symlink_to(ROOT, target_is_directory=True)
    path = str(COLLECTIONS_DIR)
    if path not in sys.path:
        sys.path.insert(0, path)
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = path
    return path
