"""GET /find's answer without HTTP: a person is found by lead id, customer id, person id,
e-mail (any case, stray spaces) and phone (national or E.164, or hashed at ingest), with
their CRM ids and what matched, and never the e-mail or phone itself.

A small CRM written as files and loaded by ``load_crm``, so keys are normalised (and
hashed) exactly as ingest does it; no model is trained, so the file runs in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.ingest import load_crm
from radar.config import IdentityConfig, ServingConfig, Settings
from serving import ui_api
from serving.app import ApiError
from serving.feature_store import FeatureStore, default_store_path, materialize
from serving.find import FindResponse, find_answer

AS_OF = pd.Timestamp("2025-03-01")
LEADS = """lead_id,created_at,email,phone,source,country
L1,2025-01-02,Ana.Silva@Shop.example,020 7946 0000,referral,GB
L2,2025-01-05,bob@example.org,+49 30 901820,paid_search,DE
L3,2025-01-20,ana.silva@shop.example,,referral,GB
L4,2025-01-21,info@big.example,07700 900461,events,GB
L5,2025-01-22,info@big.example,07700 900462,events,GB
L7,2025-01-23,info@big.example,07700 900463,events,GB
L8,2025-01-24,info@big.example,07700 900464,events,GB
L9,2025-01-25,info@big.example,07700 900465,events,GB
L10,2025-01-26,info@big.example,07700 900466,events,GB
L6,2025-04-01,later@example.org,020 7946 0999,referral,GB
"""
ORDERS = """customer_id,email,timestamp,amount,status
C9,BOB@example.org,2025-02-01,120.0,paid
C10,carol@example.net,2025-02-03,80.0,paid
"""
#: Every personal value of the files, as written and as normalised: none may be answered.
PERSONAL = ("Ana.Silva@Shop.example", "ana.silva@shop.example", "bob@example.org", "020 7946 0000", "+442079460000",
            "4930901820", "info@big.example", "07700 900461", "+447700900461", "carol@example.net", "later@example.org")


def _crm(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leads.csv").write_text(LEADS, encoding="utf-8")
    (folder / "orders.csv").write_text(ORDERS, encoding="utf-8")
    return folder


def _views(settings: Settings, folder: Path, mapping: Path | None = None) -> ui_api.UiViews:
    data = load_crm(folder, mapping, settings=settings).data
    return ui_api.UiViews(settings, {}, data, AS_OF)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(work_dir=tmp_path_factory.mktemp("find-work"))


@pytest.fixture(scope="module")
def views(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ui_api.UiViews:
    return _views(settings, _crm(tmp_path_factory.mktemp("find") / "crm"))


def _find(views: ui_api.UiViews, q: str, kind: str | None = None) -> FindResponse:
    answer = find_answer(views, None, q, kind, views.settings)
    text = answer.model_dump_json()
    assert not [p for p in PERSONAL if p.lower() in text.lower()], text  # nothing personal is answered
    return answer


def _person_of(views: ui_api.UiViews, lead_id: str) -> str:
    leads = views.data.leads
    return str(leads.loc[leads["lead_id"] == lead_id, "person_id"].iloc[0])


def test_a_lead_id_finds_the_person_with_every_id_of_a_merge(views: ui_api.UiViews) -> None:
    answer = _find(views, "L3")
    assert answer.total == 1 and answer.as_of == "2025-03-01"
    ana = answer.matches[0]
    # L1 and L3 share an e-mail (written in two cases), so they are one person.
    assert ana.person_id == _person_of(views, "L1") and ana.matched_by == ["lead_id"]
    assert (ana.lead_id, ana.lead_ids, ana.customer_id, ana.customer_ids) == ("L3", ["L1", "L3"], None, [])


def test_a_customer_id_and_a_person_id_find_the_same_person(views: ui_api.UiViews) -> None:
    bob = _find(views, "C9").matches
    assert len(bob) == 1 and bob[0].matched_by == ["customer_id"]
    # The order's e-mail linked customer C9 to lead L2.
    assert (bob[0].lead_id, bob[0].customer_id, bob[0].customer_ids) == ("L2", "C9", ["C9"])
    again = _find(views, f"  {bob[0].person_id} ").matches
    assert [(m.person_id, m.matched_by) for m in again] == [(bob[0].person_id, ["person_id"])]
    assert _find(views, "C10").matches[0].lead_id is None  # a customer who never came in as a lead


@pytest.mark.parametrize("q", ["ana.silva@shop.example", "  ANA.Silva@SHOP.example ", "mailto:Ana.Silva@shop.example"])
def test_an_email_is_matched_in_its_normal_form(views: ui_api.UiViews, q: str) -> None:
    matches = _find(views, q).matches
    assert [(m.person_id, m.matched_by) for m in matches] == [(_person_of(views, "L1"), ["email"])]


@pytest.mark.parametrize("q", ["020 7946 0000", "02079460000", "+44 20 7946 0000", "+442079460000", "(020) 7946-0000"])
def test_a_phone_is_matched_national_or_e164(views: ui_api.UiViews, q: str) -> None:
    matches = _find(views, q).matches
    assert [(m.person_id, m.matched_by) for m in matches] == [(_person_of(views, "L1"), ["phone"])]


def test_a_phone_of_another_country_is_found_in_international_form(views: ui_api.UiViews) -> None:
    assert _find(views, "+49 30 901820").matches[0].person_id == _person_of(views, "L2")
    # National form is read in identity.default_phone_region (GB): a German number is not.
    with pytest.raises(ApiError) as caught:
        _find(views, "030 901820")
    assert caught.value.status == 404


def test_a_shared_address_lists_everyone_who_used_it(views: ui_api.UiViews) -> None:
    # Six lead ids on one address: a shared key (identity.max_ids_per_key 5) that links
    # nobody, so six people hold it.
    every = _find(views, "info@big.example")
    assert every.total == 6 and {m.lead_id for m in every.matches} == {"L4", "L5", "L7", "L8", "L9", "L10"}
    assert all(m.matched_by == ["email"] and len(m.lead_ids) == 1 for m in every.matches)
    capped = views.settings.model_copy(update={"serving": ServingConfig(find_limit=2)})
    two = find_answer(views, None, "info@big.example", None, capped)
    assert two.total == 6 and [m.person_id for m in two.matches] == [m.person_id for m in every.matches][:2]


@pytest.mark.parametrize("q", ["L404", "nobody@example.org", "07700 900999", "later@example.org", "L6"])
def test_nobody_or_someone_after_the_day_is_a_404_that_does_not_repeat_the_query(views: ui_api.UiViews, q: str) -> None:
    # L6 and later@… were created after the page's day, so the page cannot show them yet.
    with pytest.raises(ApiError) as caught:
        _find(views, q)
    assert caught.value.status == 404 and caught.value.field == "q"
    assert q not in str(caught.value.body())


@pytest.mark.parametrize(("q", "kind"), [("   ", None), ("not-an-address", "email"), ("12", "phone"),
                                         ("020 7946", "phone")])
def test_a_query_that_cannot_be_the_key_asked_is_a_422(views: ui_api.UiViews, q: str, kind: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        _find(views, q, kind)
    assert caught.value.status == 422 and caught.value.field == "q"
    assert not q.strip() or q not in str(caught.value.body())


def test_kind_narrows_the_search(views: ui_api.UiViews) -> None:
    assert _find(views, "L1", "lead_id").matches[0].matched_by == ["lead_id"]
    with pytest.raises(ApiError):
        _find(views, "L1", "customer_id")


def test_hashed_contact_columns_are_matched_by_hashing_the_query(settings: Settings, tmp_path: Path) -> None:
    hashed = settings.model_copy(update={"identity": IdentityConfig(hash_secret="a-long-test-secret-0123456789")})
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("hash_columns: [email, phone]\n", encoding="utf-8")
    views = _views(hashed, _crm(tmp_path / "crm"), mapping)
    assert "ana.silva@shop.example" not in set(views.data.leads["email"].dropna())  # stored as hashes
    ana = _person_of(views, "L1")
    for q in (" Ana.Silva@shop.EXAMPLE", "020 7946 0000", "+442079460000"):
        assert [m.person_id for m in _find(views, q).matches] == [ana], q
    # Without the secret the stored hashes cannot be matched: an honest "nobody".
    with pytest.raises(ApiError) as caught:
        find_answer(ui_api.UiViews(settings, {}, views.data, AS_OF), None, "ana.silva@shop.example", None, settings)
    assert caught.value.status == 404


def test_without_a_crm_folder_ids_are_found_in_the_feature_store(views: ui_api.UiViews, settings: Settings) -> None:
    store = FeatureStore(default_store_path(settings))
    materialize(views.data, AS_OF, settings, store)
    empty = ui_api.UiViews(settings, {}, None, None, "no folder")
    answer = find_answer(empty, store, "L1", None, settings)
    assert [(m.person_id, m.matched_by, m.lead_ids) for m in answer.matches] == [
        (_person_of(views, "L1"), ["lead_id"], ["L1", "L3"])]
    assert find_answer(empty, store, "C9", None, settings).matches[0].lead_id == "L2"
    with pytest.raises(ApiError) as caught:  # e-mails need the CRM folder: told, not "nobody"
        find_answer(empty, store, "bob@example.org", None, settings)
    assert caught.value.status == 503 and "RADAR_DATA_DIR" in caught.value.detail


def test_history_is_found_by_lead_or_customer_id_too(views: ui_api.UiViews, tmp_path: Path) -> None:
    from datetime import date

    from serving.app import ScoringApp
    from serving.history import ScoreHistory

    settings = Settings(work_dir=tmp_path)
    store = FeatureStore(default_store_path(settings))
    materialize(views.data, AS_OF, settings, store)
    history = ScoreHistory.of(settings)
    bob = _person_of(views, "L2")
    for day, score in ((date(2025, 2, 1), 31), (date(2025, 3, 1), 44)):
        history.record(pd.DataFrame({"person_id": [bob], "target": ["purchase_probability"], "model_version": ["1"],
                                     "probability": [score / 100], "score": [score]}), day)
    app = ScoringApp(settings, None, store, history)  # type: ignore[arg-type]  # no model is needed to read history
    by_id = [app.score_history(**asked) for asked in ({"person_id": bob}, {"lead_id": "L2"}, {"customer_id": "C9"})]
    assert [[p.score for p in h.points] for h in by_id] == [[31, 44]] * 3
    assert {h.person_id for h in by_id} == {bob}
    for asked, status in (({"lead_id": "L404"}, 404), ({}, 422), ({"person_id": bob, "lead_id": "L2"}, 422),
                          ({"lead_id": "L2", "target": "nope"}, 422)):
        with pytest.raises(ApiError) as caught:
            app.score_history(**asked)
        assert caught.value.status == status, asked
