"""The app's pages, routed by app.py (st.navigation)."""
