"""The default configuration, installed as the package `signaling.default_config`.

pyproject.toml maps this folder onto `signaling.default_config` so that the wheel carries
default.yaml as package data; the `sprechzimmer` command falls back to it (signaling.cli).
"""
