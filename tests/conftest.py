"""Shared fixtures of the app tests: a random-weight model set, a fresh database, and a running
`streamlit run app.py` for the browser tests. Puts ``bench/`` on ``sys.path``: the tests import
its ``appserver`` (how the app's server is started and probed) and ``fault_load``."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import lran_core

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from appserver import StreamlitServer  # noqa: E402

CLASSES = ["IDC-negative", "IDC-positive"]
VARIANTS = ["resnet18", "resnet18-ran", "resnet18-lran"]
# Streamlit's first run imports torch and loads three models: generous on a 2-core machine.
TIMEOUT_MS = 90_000


def random_models(root: Path, input_size: int = 64) -> Path:
    """Writes a model set 'idc' of the three variants with random weights under ``root``
    (at 4 um/px); gives ``root``, for LRAN_MODELS_DIR."""
    torch.manual_seed(0)
    for variant in VARIANTS:
        lran_core.save_checkpoint(
            lran_core.build_model(variant, num_classes=2),
            root / "idc" / f"{variant}.safetensors",
            class_names=CLASSES,
            input_size=input_size,
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
            mpp=4.0,
            data_description="random weights (tests)",
        )
    return root


@pytest.fixture(autouse=True)
def _dataset_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoded datasets are cached in a temporary folder, never in the user's ~/.cache."""
    monkeypatch.setenv("LRAN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dataset-cache"))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model set 'idc' of the three variants with random weights."""
    return random_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def env(models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points the app at the random models and a fresh database, and saves aided reads as soon
    as the maps are shown (AppTest reads at machine speed; tests of the wait set it); gives the
    database URL."""
    url = f"sqlite:///{tmp_path / 'reviews.sqlite'}"
    monkeypatch.setenv("LRAN_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("LRAN_REVIEW_DB", url)
    monkeypatch.setenv("LRAN_AIDED_WAIT_S", "0")
    return url


@contextlib.contextmanager
def streamlit_run(
    script: str | Path,
    env: dict[str, str],
    log_path: Path,
    *,
    cwd: Path = ROOT,
    args: tuple[str, ...] = (),
    startup_s: float = 90,
) -> Iterator[int]:
    """``streamlit run script`` (bench/appserver.py), its output in ``log_path``; gives the
    port once the health check answers (fails the test with the log when it does not within
    ``startup_s``), and stops the server afterwards."""
    with StreamlitServer(script, env, log_path, cwd=cwd, args=args) as server:
        try:
            server.wait(startup_s)
        except RuntimeError as error:
            pytest.fail(str(error))
        yield server.port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A running app on a free port with a fresh database; gives (its URL, the database URL).

    It uses the shipped weights when all three are installed, else a random-weight set at the
    shipped input size (128 px).
    """
    db = f"sqlite:///{tmp_path / 'reviews.sqlite'}"
    env = {**os.environ, "LRAN_REVIEW_DB": db}
    shipped = ROOT / "lran_core" / "weights" / "idc"
    if not all((shipped / f"{v}.safetensors").is_file() for v in VARIANTS):
        env["LRAN_MODELS_DIR"] = str(random_models(tmp_path / "models", input_size=128))
    with streamlit_run("app.py", env, tmp_path / "streamlit.log") as port:
        yield f"http://127.0.0.1:{port}", db
