"""Every pgTAP file under tests/pgtap is one test, run against a fresh clone of the schema."""

import pytest

from hrp_harness.platform.paths import REPO
from hrp_harness.platform.pgtap import pgtap_files, run_pgtap

FILES = pgtap_files()


@pytest.mark.cluster
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO / "tests" / "pgtap")) for p in FILES])
def test_pgtap_file(schema_db, path):
    result = run_pgtap(schema_db, path)
    assert result.ok, "\n" + result.report()


@pytest.mark.unit
def test_every_sql_object_area_has_pgtap_coverage():
    """Each SQL file of deploy.plan (but the ledger) has a pgTAP file mirroring its name."""
    from hrp_harness.platform.apply import read_plan

    tested = {p.stem for p in FILES}
    missing = []
    for entry in read_plan():
        stem = entry.file.stem.split("_", 1)[1] if entry.file.stem[:4].isdigit() else entry.file.stem
        if stem not in tested:
            missing.append(entry.path)
    assert missing == [], f"no tests/pgtap file for: {missing}"
