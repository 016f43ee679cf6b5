"""The node turns the kernel's same-page merging on, and leaves an operator's other choices alone."""

from __future__ import annotations

from pathlib import Path

from hutch.runtime.container import page_merging


def test_merging_is_turned_on_where_it_was_off(tmp_path: Path):
    run = tmp_path / "run"
    run.write_text("0\n")
    assert page_merging.start(run)
    assert run.read_text() == "1"


def test_merging_that_runs_stays_as_it_is(tmp_path: Path):
    run = tmp_path / "run"
    run.write_text("1\n")
    assert page_merging.start(run)
    assert run.read_text() == "1\n"


def test_an_unmerge_asked_for_is_left_alone(tmp_path: Path):
    run = tmp_path / "run"
    run.write_text("2\n")
    assert not page_merging.start(run)
    assert run.read_text() == "2\n"


def test_a_kernel_without_merging_only_says_so(tmp_path: Path):
    assert not page_merging.start(tmp_path / "missing")
