"""MkDocs hooks (mkdocs.yml): the notebooks in notebooks/ become pages of the site at
notebooks/NAME/ without a copy in docs/, so the notebooks the tests run are the ones
shown. mkdocs-jupyter renders them as they are committed (no outputs, not executed)."""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = "notebooks"


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns them into pages
def on_files(files: Files, config: MkDocsConfig) -> Files:
    for notebook in sorted((ROOT / NOTEBOOKS).glob("*.ipynb")):
        files.append(File(f"{NOTEBOOKS}/{notebook.name}", src_dir=str(ROOT),
                          dest_dir=config.site_dir, use_directory_urls=config.use_directory_urls))
    return files
