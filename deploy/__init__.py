"""Deployment helpers: several app processes behind nginx for a workshop room."""
