"""``callcenter customers import`` as typed: bad rows located by line and column, good rows in
PostgreSQL, and the IVR's lookup (the production ``CustomerDirectory``) finds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from callcenter.store.customers import CustomerDirectory
from tests.centers import REPO

CSV = (
    "Phone,Name,Tier,Account,Plan\n"
    "+12125550100,Ada Lovelace,vip,A-1,green\n"
    "(212) 555-0101,Charles Babbage,standard,A-2,blue\n"  # national: the region makes it E.164
    "not a number,Nobody,vip,A-3,red\n"
    "+12125550100,Ada again,vip,A-4,green\n"  # duplicate
    "+12125550102,Grace,gold star,A-5,red\n"  # a tier that is no word
    "+12125550103,Alan,standard,A-6\n"  # a column short
    "+12125550104,Eve\x07,standard,A-7,red\n"  # a control character
)


def run(tmp_path: Path, db_dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_dsn}
    return subprocess.run(
        [sys.executable, "-m", "callcenter", "--run-dir", str(tmp_path / "run"),
         "customers", "import", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO, check=False,
    )  # fmt: skip


async def test_import_reports_bad_rows_by_line_and_the_lookup_finds_the_good_ones(
    tmp_path: Path, db_dsn: str
) -> None:
    f = tmp_path / "customers.csv"
    f.write_text(CSV)
    done = run(tmp_path, db_dsn, str(f), "--config", str(REPO / "dialplans"))
    assert done.returncode == 0, done.stderr
    assert "customers: 2 stored, 5 bad rows" in done.stdout
    errors = done.stderr.splitlines()
    assert [e.split(": ", 1)[0] for e in errors] == [
        f"{f}:line 4, column phone",
        f"{f}:line 5, column phone",
        f"{f}:line 6, column tier",
        f"{f}:line 7",
        f"{f}:line 8, column name",
    ]
    assert "already imported at line 2" in errors[1]
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
    try:
        directory = CustomerDirectory(pool, timeout=5.0)
        ada = await directory.lookup("+12125550100")
        charles = await directory.lookup("+12125550101")
        nobody = await directory.lookup("+12125550104")
    finally:
        await pool.close()
    assert ada.outcome == "found" and ada.customer is not None
    assert (ada.customer.name, ada.customer.tier, ada.customer.account) == ("Ada Lovelace", "vip", "A-1")
    assert dict(ada.customer.data) == {"plan": "green"}
    assert charles.outcome == "found" and nobody.outcome == "not_found"


def test_every_row_bad_or_no_phone_column_exits_1(tmp_path: Path, db_dsn: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("name,tier\nAda,vip\n")
    done = run(tmp_path, db_dsn, str(f))
    assert done.returncode == 1 and "line 1: no phone column" in done.stderr
    missing = run(tmp_path, db_dsn, str(tmp_path / "absent.csv"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
