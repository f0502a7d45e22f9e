"""Atomic writes: a failed write leaves the previous file intact and no temp file behind."""

from pathlib import Path

import pandas as pd
import pytest

from features.atomic import atomic_path, write_csv, write_parquet


def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = write_parquet(frame, tmp_path / "sub" / "f.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


def test_failure_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    write_csv(pd.DataFrame({"a": [1]}), target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temp:
            temp.write_text("half a fi")
            raise RuntimeError("killed mid-write")
    assert target.read_text().splitlines() == ["a", "1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]
