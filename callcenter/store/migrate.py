"""Shell: versioned SQL migrations, applied in order, each in its own transaction.

Files live in ``callcenter/store/migrations`` as ``NNNN_name.sql``. Each applied file is recorded
in ``schema_migrations`` (version, name, checksum, applied_at). Applying is idempotent; a failing
file rolls back entirely and leaves nothing behind; an applied file whose text changed is refused.
Concurrent migrators are serialised by an advisory lock.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from callcenter.errors import MigrationError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x63616C6C  # "call"

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def load_migrations(package: str = "callcenter.store.migrations") -> list[Migration]:
    """The packaged migrations in version order; a gap or a bad file name is an error."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _NAME.match(entry.name)
        if not m:
            raise MigrationError(f"migration file name {entry.name!r} is not NNNN_name.sql", file=entry.name)
        found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise MigrationError(
                f"migration {mig.filename} out of sequence: expected version {expected:04d}",
                version=mig.version,
                file=mig.filename,
            )
    return found


async def migrate(conn: Any, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is missing; return the migrations applied now (empty when up to date)."""
    todo = load_migrations() if migrations is None else migrations
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_BOOTSTRAP)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {r["version"]: r for r in rows}
        for mig in todo:
            row = done.get(mig.version)
            if row is not None:
                if row["checksum"] != mig.checksum:
                    raise MigrationError(
                        f"migration {mig.filename} was changed after it was applied "
                        "(write a new migration instead)",
                        version=mig.version,
                        file=mig.filename,
                    )
                continue
            try:
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        mig.version,
                        mig.name,
                        mig.checksum,
                    )
            except MigrationError:
                raise
            except Exception as exc:  # asyncpg's errors: translated once, here
                sqlstate = getattr(exc, "sqlstate", None)
                raise MigrationError(
                    f"migration {mig.filename} failed and was rolled back: "
                    f"{type(exc).__name__} (SQLSTATE {sqlstate}): {exc}",
                    version=mig.version,
                    file=mig.filename,
                ) from exc
            applied_now.append(mig)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def applied_versions(conn: Any) -> list[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [int(r["version"]) for r in rows]
