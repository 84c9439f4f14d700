"""Streamlit custom components of LRAN Review, shipped pre-built: nothing is fetched at run
time."""
