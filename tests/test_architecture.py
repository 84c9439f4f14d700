"""The doors between the rooms (pyproject's import contracts) hold, and fail on a wrong import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lran_core", "annotations", "review", "ui")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Runs import-linter (its command, from this environment) in ``root``."""
    command = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(command)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(root), "PATH": str(command.parent)},
    )


def test_the_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_a_wrong_import_breaks_a_contract(tmp_path: Path) -> None:
    # A copy of the code in which lran_core reaches into the record.
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("weights"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "lran_core" / "leak.py").write_text("from annotations.store import Store\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "lran_core knows nothing of the record, the join or the UI BROKEN" in result.stdout
    assert "lran_core.leak -> annotations.store" in result.stdout
