"""Hashing personal columns at ingest: identities are still unified, features do not change,
and neither the raw values nor the key leave the loader."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.errors import RadarInputError
from features.ingest import load_crm
from features.mapping import load_mapping
from features.privacy import pseudonymise
from radar.cli import app
from radar.config import IdentityConfig, Settings
from radar.demo import generate_world

SECRET = "s3cret-hash-key-for-tests-only-7f1c"
AS_OF = "2025-06-01"
PERSON_TABLES = ("leads", "interactions", "orders", "deals")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One small demo world validated and featurised twice with the CLI: plain, and with a
    mapping that hashes e-mail and phone (key from the environment)."""
    root = tmp_path_factory.mktemp("hashing")
    crm = root / "crm"
    generate_world(n_customers=800, seed=5, out_dir=crm)
    mapping = root / "hash.yaml"
    mapping.write_text("hash_columns: [email, phone]\n", encoding="utf-8")
    runner = CliRunner()
    env = {"RADAR_WORK_DIR": str(root / "work"), "RADAR_IDENTITY__HASH_SECRET": SECRET}
    out: dict = {"root": root, "crm": crm, "outputs": []}
    for name, extra in (("plain", []), ("hashed", ["--mapping", str(mapping)])):
        validated = root / f"validated-{name}"
        result = runner.invoke(app, ["validate", str(crm), "--out", str(validated), *extra], env=env)
        assert result.exit_code == 0, result.output
        out["outputs"].append(result.output)
        features = root / f"features-{name}.parquet"
        result = runner.invoke(app, ["features", str(validated), "--as-of", AS_OF, "--out", str(features)], env=env)
        assert result.exit_code == 0, result.output
        out["outputs"].append(result.output)
        out[name] = {"validated": validated, "features": pd.read_parquet(features),
                     "data": load_crm(validated).data, "report": (validated / "report.json").read_text()}
    return out


def test_hashed_run_links_the_same_people_with_the_same_features(runs: dict) -> None:
    plain, hashed = runs["plain"], runs["hashed"]
    assert '"persons"' in plain["report"]
    persons = [re.search(r'"persons": (\d+)', r["report"]).group(1) for r in (plain, hashed)]
    assert persons[0] == persons[1] and int(persons[0]) > 500
    for table in PERSON_TABLES:
        a, b = getattr(plain["data"], table), getattr(hashed["data"], table)
        assert a["person_id"].tolist() == b["person_id"].tolist(), table
    assert len(plain["features"]) == len(hashed["features"]) > 300
    pd.testing.assert_frame_equal(plain["features"], hashed["features"])


def test_hashes_are_keyed_and_taken_after_normalisation(runs: dict) -> None:
    plain, hashed = runs["plain"], runs["hashed"]
    for column in ("email", "phone"):
        a = pd.concat([getattr(plain["data"], t)[column] for t in PERSON_TABLES], ignore_index=True)
        b = pd.concat([getattr(hashed["data"], t)[column] for t in PERSON_TABLES], ignore_index=True)
        assert a.isna().tolist() == b.isna().tolist()
        pairs = pd.DataFrame({"plain": a, "hashed": b}).dropna()
        assert pairs["hashed"].str.fullmatch(r"[0-9a-f]{16}").all(), column
        # One hash per normalised value and one value per hash: the mapping is one to one,
        # so "Ana@Shop.com " and "ana@shop.com" (one value once normalised) share a hash.
        assert pairs.groupby("plain")["hashed"].nunique().max() == 1
        assert pairs.groupby("hashed")["plain"].nunique().max() == 1
        value = pairs["plain"].iloc[0]
        assert pairs["hashed"].iloc[0] == pseudonymise(value.strip().casefold(), SECRET)
        assert pseudonymise(value, "another key") != pseudonymise(value, SECRET)
    raw = pd.read_csv(runs["crm"] / "leads.csv", dtype=str)
    variants = raw["email"].dropna()
    assert (variants != variants.str.strip().str.lower()).any()  # the demo writes e-mails messily


def test_no_raw_value_or_key_leaves_the_hashed_load(runs: dict) -> None:
    raw = pd.read_csv(runs["crm"] / "leads.csv", dtype=str)
    emails = set(raw["email"].dropna().str.strip().str.lower())
    folder = runs["hashed"]["validated"]
    text = "\n".join(p.read_bytes().decode("latin-1").lower() for p in sorted(folder.rglob("*")) if p.is_file())
    found = set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text)) & emails
    assert not found, sorted(found)[:5]
    for blob in [text, *runs["outputs"]]:
        assert SECRET.lower() not in blob.lower()


def test_hashing_without_a_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("lead_id,created_at,email\nL1,2024-01-01,a@b.com\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("hash_columns: [email]\n", encoding="utf-8")
    with pytest.raises(RadarInputError, match="RADAR_IDENTITY__HASH_SECRET"):
        load_crm(tmp_path, mapping, settings=Settings())
    settings = Settings(identity=IdentityConfig(hash_secret=SECRET))
    assert SECRET not in repr(settings) and SECRET not in settings.model_dump_json()
    assert load_crm(tmp_path, mapping, settings=settings).data.leads["email"].iloc[0] != "a@b.com"


def test_a_key_in_the_mapping_file_is_refused(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("hash_columns: [email]\nhash_salt: do-not-keep-me-here\n", encoding="utf-8")
    with pytest.raises(RadarInputError, match="RADAR_IDENTITY__HASH_SECRET") as err:
        load_mapping(mapping)
    assert "do-not-keep-me-here" not in str(err.value)
