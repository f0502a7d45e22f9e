"""Identity unification: hand-made cases with known person groups, and a demo world."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.identity import normalise_emails, normalise_phones, unify
from radar.config import IdentityConfig, Settings


def _frame(rows: list[dict], columns: tuple[str, ...] = ("lead_id", "customer_id", "email", "phone")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns)).astype(object)


def _groups(tables: dict[str, pd.DataFrame], label: str = "tag") -> set[frozenset[str]]:
    """Person groups as sets of row tags, to compare with the expected grouping."""
    stacked = pd.concat([t[[label, "person_id"]] for t in tables.values()])
    return {frozenset(g[label]) for _, g in stacked.groupby("person_id")}


def test_email_case_and_spaces() -> None:
    leads = _frame([{"lead_id": "L1", "email": " Ana@Shop.COM"}, {"lead_id": "L2", "email": "bob@shop.com"}]).assign(tag=["a", "b"])
    orders = _frame([{"customer_id": "C1", "email": "ana@shop.com "}]).assign(tag=["c"])
    out, report = unify({"leads": leads, "orders": orders}, IdentityConfig())
    assert _groups(out) == {frozenset({"a", "c"}), frozenset({"b"})}
    assert out["leads"]["email"].tolist() == ["ana@shop.com", "bob@shop.com"]
    assert report.records == 3 and report.persons == 2 and report.merged_via["email"] == 2


@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("020 7946 0000", "GB", "+442079460000"),
        ("+44 (0)20 7946 0000", "US", "+442079460000"),
        ("0044 20 7946 0000", "GB", "+442079460000"),
        ("07911 123456", "GB", "+447911123456"),
        ("(415) 555-0132", "US", "+14155550132"),
        ("+1 415.555.0132", "GB", "+14155550132"),
        ("1-415-555-0132", "US", "+14155550132"),
        ("030 901820", "DE", "+4930901820"),
        ("+49 (30) 901820", "GB", "+4930901820"),
        ("0151 23456789", "DE", "+4915123456789"),
    ],
)
def test_phone_formats(raw: str, region: str, expected: str) -> None:
    out, invalid = normalise_phones(pd.Series([raw]), region)
    assert out.item() == expected and not invalid.item()


def test_phones_of_one_person_in_many_formats_link() -> None:
    leads = _frame(
        [
            {"lead_id": "L1", "phone": "020 7946 0000"},
            {"lead_id": "L2", "phone": "+44 20 7946 0000"},
            {"lead_id": "L3", "phone": "(415) 555-0132"},
            {"lead_id": "L4", "phone": "+1 415 555 0132"},
            {"lead_id": "L5", "phone": "030 901820"},
            {"lead_id": "L6", "phone": "+49 30 901820"},
        ]
    ).assign(country=["GB", None, "US", "US", "DE", "de"], tag=list("abcdef"))
    out, report = unify({"leads": leads}, IdentityConfig())
    assert _groups(out) == {frozenset("ab"), frozenset("cd"), frozenset("ef")}
    assert report.merged_via["phone"] == 6 and report.invalid_phones == 0


def test_invalid_phones_are_kept_but_not_linked() -> None:
    leads = _frame([{"lead_id": "L1", "phone": "12345"}, {"lead_id": "L2", "phone": "12345"}]).assign(tag=["a", "b"])
    out, report = unify({"leads": leads}, IdentityConfig())
    assert _groups(out) == {frozenset("a"), frozenset("b")}
    assert report.invalid_phones == 2
    assert out["leads"]["phone"].tolist() == ["12345", "12345"]


def test_chain_through_different_keys() -> None:
    leads = _frame([{"lead_id": "L1", "email": "a@x.com"}]).assign(tag=["A"])
    interactions = _frame([{"email": "A@x.com", "phone": "+44 7911 123456"}, {"phone": "07911123456", "customer_id": "C1"}]).assign(tag=["B", "C"])
    orders = _frame([{"customer_id": "C1"}, {"customer_id": "C2"}]).assign(tag=["D", "E"])
    out, report = unify({"leads": leads, "interactions": interactions, "orders": orders}, IdentityConfig())
    assert _groups(out) == {frozenset("ABCD"), frozenset("E")}
    assert report.persons == 2


def test_switchboard_shared_by_ten_people_does_not_merge_them() -> None:
    rows = [{"lead_id": f"L{i}", "email": f"p{i}@corp.com", "phone": "+44 20 7946 0999"} for i in range(10)]
    leads = _frame(rows).assign(tag=[f"p{i}" for i in range(10)])
    # An order reaches the switchboard only: it stays apart from all ten people.
    orders = _frame([{"customer_id": "C1", "phone": "020 7946 0999"}, {"customer_id": "C2", "email": "P3@corp.com"}]).assign(tag=["sw", "o3"])
    out, report = unify({"leads": leads, "orders": orders}, IdentityConfig(max_ids_per_key=5))
    expected = {frozenset({f"p{i}"}) for i in range(10) if i != 3} | {frozenset({"p3", "o3"}), frozenset({"sw"})}
    assert _groups(out) == expected
    assert report.shared_keys_ignored == 1
    shared = report.shared_keys[0]
    assert shared["kind"] == "phone" and shared["ids"] == 11 and "7946" not in str(shared["key"])


def test_key_below_the_limit_still_links() -> None:
    leads = _frame([{"lead_id": f"L{i}", "phone": "+44 20 7946 0999"} for i in range(3)]).assign(tag=list("abc"))
    out, report = unify({"leads": leads}, IdentityConfig(max_ids_per_key=5))
    assert _groups(out) == {frozenset("abc")} and report.shared_keys_ignored == 0


def test_person_ids_are_stable_and_do_not_touch_input() -> None:
    leads = _frame([{"lead_id": "L1", "email": "a@x.com"}, {"lead_id": "L2"}]).assign(tag=["a", "b"])
    before = leads.copy()
    first, _ = unify({"leads": leads}, IdentityConfig())
    second, _ = unify({"leads": leads.iloc[::-1].reset_index(drop=True)}, IdentityConfig())
    pd.testing.assert_frame_equal(leads, before)
    ids = dict(zip(first["leads"]["tag"], first["leads"]["person_id"]))
    assert dict(zip(second["leads"]["tag"], second["leads"]["person_id"])) == ids
    assert all(p.startswith("P") and len(p) == 17 for p in ids.values())


def test_normalise_emails_marks_invalid() -> None:
    out, invalid = normalise_emails(pd.Series([" A@B.co ", "not-an-email", None, "mailto:x@y.org"]))
    assert out.tolist()[0] == "a@b.co" and out.tolist()[3] == "x@y.org"
    assert invalid.tolist() == [False, True, False, False]


# Whitespace Python and Arrow might read differently, letters whose case differs, and the
# address's own punctuation.
_SPACES = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\xa0\u2003"
_EMAIL_ALPHABET = " \t\n\r\x0b\x0c\x1c\x1f\xa0\u2003@.:-_+aAmMiItToOzZ09éÄİß"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(alphabet=_EMAIL_ALPHABET, max_size=14),
                          st.builds(lambda a, b: f"{a}@{b}", st.text(_EMAIL_ALPHABET, max_size=6),
                                    st.text(_EMAIL_ALPHABET, max_size=8)),
                          st.builds(lambda a: f"MailTo:{a}@x.io", st.text(_EMAIL_ALPHABET, max_size=5)),
                          st.builds(lambda left, a, right: f"{left}{a}@shop.co{right}", st.text(_SPACES, max_size=2),
                                    st.text(_EMAIL_ALPHABET, min_size=1, max_size=4), st.text(_SPACES, max_size=2))),
                min_size=1, max_size=40))
def test_email_forms_in_arrow_equal_pythons(texts: list[str]) -> None:
    """The Arrow path of e-mail forms gives exactly the Python str methods' result."""
    from features.identity import _email_form, _email_form_python

    values = pd.Series(texts, dtype=object)
    pd.testing.assert_series_equal(_email_form(values), _email_form_python(values))


_PHONE_ALPHABET = " \t\x0b\x1c\xa0+()0123456789-./x٣"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(alphabet=_PHONE_ALPHABET, max_size=16),
                          st.builds(lambda a, b: f"{a}(0){b}", st.text(_PHONE_ALPHABET, max_size=5),
                                    st.text(_PHONE_ALPHABET, max_size=9))),
                min_size=1, max_size=40))
def test_phone_keys_in_arrow_equal_pythons(texts: list[str]) -> None:
    """The Arrow path of phone keys gives exactly the Python str methods' result."""
    from features.identity import _phone_key, _phone_key_python

    values = pd.Series(texts, dtype=object)
    pd.testing.assert_series_equal(_phone_key(values), _phone_key_python(values))


# --- Against a demo world with ground truth -------------------------------------------------


def pairwise_scores(truth: pd.Series, predicted: pd.Series) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering, from contingency counts (sum of C(n, 2))."""
    pairs = lambda counts: float((counts * (counts - 1) / 2).sum())  # noqa: E731
    frame = pd.DataFrame({"t": truth.to_numpy(), "p": predicted.to_numpy()})
    together = pairs(frame.groupby(["t", "p"]).size().to_numpy(dtype=np.float64))
    true_pairs = pairs(frame.groupby("t").size().to_numpy(dtype=np.float64))
    predicted_pairs = pairs(frame.groupby("p").size().to_numpy(dtype=np.float64))
    return together / max(predicted_pairs, 1.0), together / max(true_pairs, 1.0)


def test_pairwise_scores_on_a_known_case() -> None:
    precision, recall = pairwise_scores(pd.Series([1, 1, 1, 2, 2]), pd.Series(["a", "a", "b", "b", "b"]))
    assert recall == pytest.approx(2 / 4) and precision == pytest.approx(2 / 4)


def _check_broken_rows(folder: Path, rejects: pd.DataFrame) -> None:
    """The generator's deliberately broken rows are rejected; other rejects are explained.

    Two kinds of "orphan" cannot be caught by the contract: an order's customer_id (orders
    issue customer ids) and an event whose orphan id equals such an order's. And a lead whose
    lead_id was blanked leaves its events with an id leads never issued: rejected in cascade.
    """
    truth = pd.read_csv(folder / "truth" / "broken_rows.csv")
    merged = truth.merge(rejects[["table", "row_number", "kind"]], on=["table", "row_number"],
                         how="outer", suffixes=("_truth", ""), indicator=True)
    caught = (merged["_merge"] == "both").sum() / len(truth)
    assert caught >= 0.95, f"only {caught:.1%} of broken rows rejected"
    missed = merged[merged["_merge"] == "left_only"]
    assert set(missed["kind_truth"]) <= {"orphan_key"}
    extra = merged[merged["_merge"] == "right_only"]
    assert set(extra["kind"]) <= {"unknown_key"}


def _demo_scores(folder: Path, n_people: int) -> tuple[float, float, float]:
    from radar.demo import generate_world

    from features.ingest import load_crm

    generate_world(n_people, 11, folder, file_format="csv")
    started = time.perf_counter()
    result = load_crm(folder, settings=Settings())
    seconds = time.perf_counter() - started
    links = pd.read_csv(folder / "truth" / "record_links.csv", dtype={"table": str, "person": str})
    predicted = []
    for table in ("leads", "interactions", "orders", "deals"):
        if table in result.origins:
            origin = result.origins[table]
            predicted.append(pd.DataFrame({"table": table, "row_number": origin["row_number"].to_numpy(),
                                           "person_id": result.data.tables()[table]["person_id"].to_numpy()}))
    accepted = pd.concat(predicted, ignore_index=True).merge(links, on=["table", "row_number"], how="left")
    assert accepted["person"].notna().all(), "every accepted record has a true person"
    _check_broken_rows(folder, result.rejects)
    precision, recall = pairwise_scores(accepted["person"], accepted["person_id"])
    print(f"\n{n_people:,} people: {len(accepted):,} records, load {seconds:.1f} s, "
          f"pairwise precision {precision:.4f}, recall {recall:.4f}")
    return precision, recall, seconds


def test_demo_world_linking_small(tmp_path: Path) -> None:
    precision, recall, _ = _demo_scores(tmp_path / "crm", 2_000)
    assert recall >= 0.99 and 1 - precision <= 0.005


def test_demo_world_linking_20k(tmp_path: Path) -> None:
    precision, recall, _ = _demo_scores(tmp_path / "crm", 20_000)
    assert recall >= 0.99 and 1 - precision <= 0.005


def _phone_workers(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[tuple[str, str]], list[Any]]:
    """features.phones with parallel parsing from 10 numbers on, numbers written many ways
    in several regions, and the list the worker processes it starts are put in."""
    from features import phones

    written = ["+44 20 7946 0000", "020 7946 0000", "07700 900123", "+1 415-555-0132", "(415) 555-0132",
               "12", "not a phone", "+44 7700 900123", "0044 7700 900123", "+353 85 123 4567"]
    pairs = [(w, region) for w in written for region in ("", "GB", "US", "IE")]
    monkeypatch.setattr(phones, "PARALLEL_FROM", 10)
    started: list[Any] = []
    popen = phones.subprocess.Popen
    monkeypatch.setattr(phones.subprocess, "Popen", lambda *a, **k: started.append(popen(*a, **k)) or started[-1])
    return phones, pairs, started


def test_phones_parsed_over_two_processes_as_in_one(monkeypatch: pytest.MonkeyPatch) -> None:
    phones, pairs, started = _phone_workers(monkeypatch)
    assert phones.parse_phones_in_parallel(pairs, 2) == [phones.parse_phone(raw, region) for raw, region in pairs]
    # Half the numbers went to one worker process, which finished cleanly.
    assert len(started) == 1 and started[0].returncode == 0
    assert phones.parse_phones(pairs) == [phones.parse_phone(raw, region) for raw, region in pairs]
    assert phones.parse_phone("020 7946 0000", "GB")[0] == "+442079460000"


def test_phones_parsed_away_while_this_process_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # Sent away without this process's share: every pair goes to the (workers - 1) workers.
    phones, pairs, started = _phone_workers(monkeypatch)
    parsing = phones.Parsing(pairs, 3, here=False)
    assert len(started) == 2
    assert parsing.result() == [phones.parse_phone(raw, region) for raw, region in pairs]
    assert all(p.returncode == 0 for p in started)


def test_unify_with_phones_started_early_links_as_without(monkeypatch: pytest.MonkeyPatch) -> None:
    from features import phones
    from features.identity import PhoneParses, start_phones

    monkeypatch.setattr(phones, "PARALLEL_FROM", 2)
    leads = pd.DataFrame({
        "lead_id": ["L1", "L2", "L3", "L4"],
        "email": [None, "b@x.com", None, None],
        "phone": ["020 7946 0000", "+44 20 7946 0000", "07700 900123", "(415) 555-0132"],
        "country": ["GB", "GB", None, "US"],
    })
    orders = pd.DataFrame({"customer_id": ["C1", "C2"], "lead_id": [None, None],
                           "phone": ["+442079460000", "0044 7700 900123"]})
    tables = {"leads": leads, "orders": orders}
    config = IdentityConfig()
    plain, plain_report = unify(tables, config, "GB", PhoneParses(2))
    parses = PhoneParses(2)
    started = {name: start_phones(frame, "gb", parses) for name, frame in tables.items()}
    early, early_report = unify(tables, config, "GB", parses, started)
    assert not started  # each table's numbers were taken, none parsed again
    assert plain_report == early_report
    for name in tables:
        pd.testing.assert_frame_equal(early[name], plain[name])
    assert early["orders"]["person_id"].iloc[0] == early["leads"]["person_id"].iloc[0]


def test_contact_kinds_of_linked_numbers_parse_nothing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linking keeps every valid number's E.164 form, so the contact kinds of the linked
    leads, numbers written in national form included, send no number to be parsed."""
    from features import identity
    from features.contact import phone_kinds
    from features.identity import PhoneParses

    leads = pd.DataFrame({"lead_id": ["L1", "L2", "L3", "L4"],
                          "phone": ["020 7946 0000", "07911 123456", "+1 415-555-0132", "not a phone"]})
    parses = PhoneParses()
    linked, _ = unify({"leads": leads}, IdentityConfig(), "GB", parses)
    sent: list[tuple[str, str]] = []
    parsing = identity.Parsing
    monkeypatch.setattr(identity, "Parsing", lambda pairs, *a, **k: sent.extend(pairs) or parsing(pairs, *a, **k))
    kinds = phone_kinds(linked["leads"]["phone"], parses=parses)
    assert sent == []
    # The kinds are those of reading each E.164 number afresh.
    assert kinds.tolist() == phone_kinds(linked["leads"]["phone"]).tolist()
    assert kinds.tolist() == ["fixed_line", "mobile", "fixed_line_or_mobile", "invalid"]
