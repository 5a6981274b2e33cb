"""Runnable entry points shipped inside the package (the main job)."""
