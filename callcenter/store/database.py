"""Shell: which PostgreSQL to use. ``DATABASE_URL`` when set, else the private cluster."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from callcenter.store.pgcluster import PrivateCluster


@contextlib.contextmanager
def database(run_dir: Path, *, echo: bool = False) -> Iterator[str]:
    """Yield a DSN: ``$DATABASE_URL`` as is, or a private cluster in ``run_dir/pg`` that is
    started now and stopped when the block exits (also on Ctrl-C or an error)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        if echo:
            print("database: DATABASE_URL (an existing PostgreSQL)", flush=True)
        yield url
        return
    cluster = PrivateCluster(run_dir / "pg")
    created = cluster.init()
    if echo:
        verb = "created" if created else "reusing"
        print(
            f"database: private PostgreSQL cluster ({verb} {cluster.datadir}, binaries {cluster.bindir})",
            flush=True,
        )
    try:
        dsn = cluster.start()
        if echo:
            print(f"database: listening on {cluster.sockdir} (Unix socket only)", flush=True)
        yield dsn
    finally:
        cluster.stop()
        if echo:
            print("database: private cluster stopped", flush=True)
