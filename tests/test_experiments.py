"""scripts/experiments.py: which runs ``--only`` takes (six processes on one GPU each took one
run by its exact name)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "experiments.py"


def _experiments() -> ModuleType:
    spec = importlib.util.spec_from_file_location("experiments", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_takes_a_run_by_its_name_or_a_folder_of_runs() -> None:
    e = _experiments()
    names = [name for name, _, _ in e.groups(Path("data"), Path("runs"))["cv"]]
    assert [n for n in names if e.selected(n, "fold3/resnet18")] == ["fold3/resnet18"]
    assert [n for n in names if e.selected(n, "fold3")] == [
        "fold3/resnet18",
        "fold3/resnet18-ran",
        "fold3/resnet18-lran",
    ]
    both = [n for n in names if e.selected(n, "fold0/resnet18-lran, fold4/")]
    assert both == [
        "fold0/resnet18-lran",
        "fold4/resnet18",
        "fold4/resnet18-ran",
        "fold4/resnet18-lran",
    ]
    assert len([n for n in names if e.selected(n, None)]) == 15


def test_an_only_entry_that_takes_no_run_is_refused(monkeypatch, capsys) -> None:
    # A typo would otherwise drop its runs while the others train.
    e = _experiments()
    monkeypatch.setattr(sys, "argv", ["experiments.py", "cv", "--only", "fold3/resnet18, fold9"])
    with pytest.raises(SystemExit) as info:
        e.main()
    assert info.value.code == 2
    assert "--only fold9 takes no run of cv" in capsys.readouterr().err
