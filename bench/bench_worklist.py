"""Benchmark of a 1,000-case study, run by hand: ``python bench/bench_worklist.py [--cases N]``.

Goal (issue 10): the worklist of 1,000 cases opens, and moves to the next case, in under 300 ms
on this machine. Builds a temporary SQLite study of N IDC patches (real ones from
``../shared/data/idc`` when present, else random 50 px patches; a third of the cases read by the
reader), then measures, as medians over repeats:

1. the library: building the reader's worklist (every case with its status), finding the next
   unread case, reading and decoding a case's image from the blob folder;
2. the app, server side (AppTest, one script run each, models loaded, warm caches as in use):
   the Worklist page (progress, page 1 of the table with thumbnails), and Next on the Review
   page of the blinded study (the next case's image, its read form).

The browser adds the page's drawing to the second figure; the viewer's own timings are in
bench/bench_viewer.py.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
IDC = ROOT.parent / "shared" / "data" / "idc"
REVIEW = "ui/pages/review.py"
READER = "dr-bench"


def patches(n: int) -> list[tuple[str, bytes]]:
    """n IDC patches as (file name, PNG bytes): real ones where the data is present."""
    files = sorted(IDC.glob("*/*/*.png"))[:n] if IDC.is_dir() else []
    if len(files) == n:
        return [(p.name, p.read_bytes()) for p in files]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(buf, "PNG")
        out.append((f"{1000 + i // 100}_idx5_x{50 * (i % 100)}_y0_class0.png", buf.getvalue()))
    return out


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-worklist-"))
    url = f"sqlite:///{tmp / 'reviews.sqlite'}"
    os.environ["LRAN_REVIEW_DB"] = url
    os.environ.setdefault("LRAN_AUTH", "local")

    from annotations.geojson import mask_to_geojson
    from annotations.records import ReviewRecord
    from annotations.store import Store
    from review.items import read_image
    from review.studies import add_images, default_study, worklist

    store = Store(url)
    study = default_study(store)
    files = patches(args.cases)
    t0 = time.perf_counter()
    added = add_images(store, study, files, READER, 50)
    print(f"{len(added.added)} cases added in {time.perf_counter() - t0:.1f} s ({tmp})")
    for case in added.added[: args.cases // 3]:
        mask = np.zeros((case.item.height, case.item.width), bool)
        store.save_review(
            ReviewRecord(
                item_hash=case.item.item_hash,
                filename=case.item.filename,
                width=case.item.width,
                height=case.item.height,
                kind="patch",
                reader=READER,
                model_set=study.model_set,
                label="IDC-negative",
                mask=mask,
                geojson=mask_to_geojson(mask),
                study_id=study.study_id,
                case_id=case.case_id,
                read_kind="unaided",
                blinded=True,
                visible=["image"],
                no_region=True,
                label_set=study.label_set,
            )
        )

    build = timed(lambda: worklist(store, study, READER), args.repeats)
    list_ = worklist(store, study, READER)
    unread = timed(lambda: list_.next_unread(0), args.repeats)
    item = list_.items[len(list_.items) // 2].case.item

    def load() -> None:
        data = store.image_bytes(item.item_hash)
        assert data is not None
        read_image(item.filename, data)

    image = timed(load, args.repeats)
    print(
        f"library: worklist of {len(list_.items)} cases {build:.1f} ms, next unread "
        f"{unread:.2f} ms, a case's image read and decoded {image:.1f} ms"
    )

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.text_input(key="reader").input(READER).run()
    assert not at.exception, at.exception
    page = timed(at.run, args.repeats)
    at.switch_page(REVIEW).run()
    assert not at.exception, at.exception
    start = int(at.session_state["case_id"])

    def next_case() -> None:
        at.button(key="next").click().run()

    step = timed(next_case, args.repeats)
    assert int(at.session_state["case_id"]) != start
    assert not at.exception, at.exception
    print(
        f"app (AppTest script runs): Worklist page {page:.0f} ms, Next on the Review page "
        f"{step:.0f} ms [goal < 300 ms each]"
    )


if __name__ == "__main__":
    main()
