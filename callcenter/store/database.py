"""Shell: which PostgreSQL to use. ``DATABASE_URL`` when set, else the private cluster."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from callcenter.store.pgcluster import PrivateCluster


@contextlib.contextmanager
def database(run_dir: Path, *, echo: bool = False) -> Iterator[str]:
    """Yield a DSN: ``$DATABASE_URL`` as is, or the private cluster in ``run_dir/pg``.

    The private cluster is shared: a command that finds it running (under a controller or
    ``db serve``) uses it and leaves it running; the last process of ours to leave it stops it
    (also on Ctrl-C or an error). See ``PrivateCluster.attach``."""
    url = os.environ.get("DATABASE_URL")
    if url:
        if echo:
            print("database: DATABASE_URL (an existing PostgreSQL)", flush=True)
        yield url
        return
    cluster = PrivateCluster(run_dir / "pg")
    if echo:
        verb = "reusing" if (cluster.datadir / "PG_VERSION").exists() else "creating"
        print(
            f"database: private PostgreSQL cluster ({verb} {cluster.datadir}, binaries {cluster.bindir})",
            flush=True,
        )
    started = cluster.attach()
    try:
        if echo:
            how = "started" if started else "already running, shared"
            print(f"database: {how}; listening on {cluster.sockdir} (Unix socket only)", flush=True)
        yield cluster.dsn
    finally:
        others = cluster.detach()
        if echo:
            if others:
                users = ", ".join(str(p) for p in others)
                print(f"database: private cluster left running for process(es) {users}", flush=True)
            else:
                print("database: private cluster stopped", flush=True)
