"""Sections of the dashboard's pages (Streamlit): each reads the store through `widgets`, builds
its tables and figures with the view-model modules and draws them; the pages compose them."""
