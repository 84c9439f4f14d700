"""Reader annotations: drawn regions, agreement scores, and the review store.

- `annotations.shapes`: canvas drawings, GeoJSON (QuPath) and label masks <-> boolean masks.
- `annotations.scores`: agreement between a saliency map and a drawn region, and between readers.
- `annotations.store`: the SQLAlchemy review database (SQLite by default, PostgreSQL by URL).

No torch and no streamlit here: the package is imported by the app, the CLI and the tests alike.
"""
