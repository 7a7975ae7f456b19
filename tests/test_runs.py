"""Run folder primitives: atomic stage folders, atomic files, cache keys."""

from __future__ import annotations

import pytest

from edgeport.runs import atomic_dir, atomic_write_text, cache_key, hash_path, mark_stage, stage_is_current


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    final = tmp_path / "run" / "targets" / "x"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.bin").write_bytes(b"partial")
            raise RuntimeError("boom")
    assert not (tmp_path / "run").exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_whole(tmp_path):
    final = tmp_path / "stage"
    with atomic_dir(final) as tmp:
        (tmp / "a").write_text("1")
    with atomic_dir(final) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]


def test_atomic_write_text(tmp_path):
    path = tmp_path / "f.json"
    atomic_write_text(path, "x")
    atomic_write_text(path, "y")
    assert path.read_text() == "y"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_cache_key_and_stage_marker(tmp_path):
    assert cache_key(a=1, b=[1, 2]) == cache_key(b=[1, 2], a=1)
    assert cache_key(a=1) != cache_key(a=2)
    (tmp_path / "f").write_text("x")
    before = hash_path(tmp_path)
    mark_stage(tmp_path, "k1")
    assert hash_path(tmp_path) == before  # the marker is not part of the content
    assert stage_is_current(tmp_path, "k1") and not stage_is_current(tmp_path, "k2")
    (tmp_path / "f").write_text("y")
    assert hash_path(tmp_path) != before
