"""Files that ship inside the package: the browser pages and the default configuration.

Both stay top-level folders of the repository (`web/`, `config/`); pyproject.toml maps them onto
the packages `signaling.web` and `signaling.default_config`. The wheel therefore carries them as
package data, and the editable install's import hook finds them in the source tree, so one
importlib.resources lookup serves both.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["SOURCE_TREE_CONFIG", "default_config_path", "package_dir"]

# The development default: `make run` and the docs' examples run from the repository's root.
SOURCE_TREE_CONFIG = Path("config") / "default.yaml"


def package_dir(package: str) -> Path:
    """The folder of an installed package on disk. aiohttp's FileResponse and the traversal
    check in routes_pages need real paths, so an install that is not unpacked (a zip) fails here
    at startup, once, instead of on every request."""
    folder = resources.files(package)
    if not isinstance(folder, Path):
        raise RuntimeError(f"{package} must be installed as files on disk, not in an archive")
    return folder


def default_config_path() -> str:
    """The configuration used without --config: `config/default.yaml` in the working directory
    when there is one (the source tree), else the copy in the package, which sets every key to
    its default."""
    if SOURCE_TREE_CONFIG.is_file():
        return str(SOURCE_TREE_CONFIG)
    return str(package_dir("signaling.default_config") / "default.yaml")
