"""The browser pages and their static files, installed as the package `signaling.web`.

Nothing here is Python: pyproject.toml maps this folder onto `signaling.web` so that the wheel
carries it as package data and `signaling.routes_pages` finds it through importlib.resources,
in the wheel and in the editable install alike.
"""
