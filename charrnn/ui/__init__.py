"""Pieces of the Gradio app that are big enough for a module of their own (app.py builds the page)."""
