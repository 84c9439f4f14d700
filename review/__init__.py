"""Where the model meets the record: the only package that imports both ``lran_core`` and
``annotations`` (and never Streamlit).

- :mod:`review.modelsets`: named model sets, folders or files of checkpoints, loaded one way.
- :mod:`review.items`: uploaded images and imported reference annotations.
- :mod:`review.patches`: every model's probabilities and maps for one patch.
- :mod:`review.regions`: every model's stitched maps over a region, and their summary.
- :mod:`review.scoring`: one way to score a model's maps against a region.
- :mod:`review.records`: the records a save stores, for patch, region and reference reviews.
- :mod:`review.region`: the region command (``lran-review region``), maps and scores.
"""
