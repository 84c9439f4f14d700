"""Shared Streamlit helpers for the LRAN Review pages: session state, cached calls, widgets.

Thin on purpose: decoding, models, masks, scores and storage live in `lran_core` and
`annotations`; this package only caches their results per session or process and draws them.
"""
