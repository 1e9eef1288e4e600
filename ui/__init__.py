"""Helpers of the Streamlit app that are not pages: the URL-bound config, figure builders, caching."""
