"""The reader's drawing (from the app's canvas) as a region mask of the image."""

from __future__ import annotations

from typing import Any

import numpy as np

from annotations.canvas import canvas_to_mask


def drawn_region(
    drawing: Any, image_size: tuple[int, int], canvas_size: tuple[int, int]
) -> np.ndarray:
    """Takes a streamlit-drawable-canvas drawing (its ``json_data``), the image's and the
    canvas's (width, height); gives the bool (H, W) region of the image.

    The drawing comes from the browser and may be anything: every way it can be malformed is
    one ValueError saying what is wrong.
    """
    if not isinstance(drawing, dict):
        raise ValueError(f"the drawing is not a canvas drawing (got {type(drawing).__name__})")
    try:
        return canvas_to_mask(drawing, image_size, canvas_size)
    except ValueError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError) as err:
        raise ValueError(f"the drawing is malformed ({type(err).__name__}: {err})") from None
