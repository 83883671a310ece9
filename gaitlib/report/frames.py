"""No frame of a real dataset reaches a published page.

CASIA-B's and OU-MVLP's terms forbid redistributing their frames.  Two layers keep them out of
the book:

- the figure functions that draw silhouettes refuse frames of a real dataset and record what
  their raster images show (:mod:`gaitlib.figures._common`); the pages on real data draw a
  synthetic walker's sequence through the same trained model instead
  (:func:`gaitlib.report.study.shown_sequence`);
- in the notebooks, :func:`install` makes every displayed matplotlib figure carry that record
  in its output's metadata (``gaitlib/frames``), and publishing checks the executed page
  (:func:`check_page`): on a page made from real data every image must be declared to show the
  synthetic walker's frames or no frames at all.  An image without the declaration (a figure
  drawn by hand with ``imshow``, an ``IPython.display.Image``, an ``<img>`` in HTML) stops the
  page from being published.  The check does not trust the code that made the page, only the
  page: a page cannot pass by forgetting a step.
"""

from __future__ import annotations

import os
from pathlib import Path

from gaitlib.figures._common import FRAMES_SHOWN, RealFramesError, is_synthetic_source

METADATA_KEY = "gaitlib/frames"
_IMAGE_IN_TEXT = ("data:image", "<img", "<svg")

__all__ = ["METADATA_KEY", "RealFramesError", "check_page", "install", "page_problems",
           "unpublishable"]


def _png_with_declaration(fig):
    """The inline PNG of ``fig`` and, as its output metadata, what its raster images show."""
    from IPython.core.pylabtools import print_figure

    from gaitlib.figures._common import frames_declaration

    if not fig.axes and not fig.lines:  # an empty figure, as IPython's own formatter skips it
        return None
    return print_figure(fig, "png", bbox_inches="tight", base64=True), \
        {METADATA_KEY: frames_declaration(fig)}


def install() -> None:
    """In a notebook kernel: display matplotlib figures as PNG outputs that declare what their
    raster images show (nothing happens outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    import matplotlib
    from matplotlib.figure import Figure

    if "inline" in str(matplotlib.rcParams._get("backend")):
        # Importing the inline backend registers its own figure formatters: let it do so now,
        # before ours replaces them (a later re-registration makes figures undeclared, which
        # publishing refuses: the failure is safe).
        import matplotlib_inline.backend_inline  # noqa: F401

    formatters = shell.display_formatter.formatters
    for mime in list(formatters):
        if mime.startswith("image/") and mime != "image/png":
            formatters[mime].pop(Figure, None)  # one image per figure, the declared PNG
    formatters["image/png"].for_type(Figure, _png_with_declaration)


def page_problems(notebook) -> list[str]:
    """Images of an executed notebook (an ``nbformat`` node) that do not declare showing the
    synthetic walker's frames or no frames: one line per image, naming its cell."""
    problems = []
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            metadata = output.get("metadata", {})
            for mime, value in data.items():
                if mime.startswith("image/"):
                    declared = (metadata.get(mime) or {}).get(METADATA_KEY, "undeclared")
                    if declared not in FRAMES_SHOWN:
                        problems.append(f"cell {number}: an {mime} image whose frames are "
                                        f"{declared}")
                elif mime.startswith("text/") and any(t in str(value) for t in _IMAGE_IN_TEXT):
                    problems.append(f"cell {number}: an image embedded in {mime}")
    return problems


def check_page(path: str | os.PathLike, parameters: dict) -> None:
    """Raise :class:`RealFramesError` when the executed page ``path``, made with notebook
    ``parameters``, is made from real data (``data`` not synthetic) and holds an image that
    may show its frames (:func:`page_problems`).  Pages of the synthetic edition pass."""
    import nbformat

    data = str(parameters.get("data", "synthetic"))
    if is_synthetic_source(data):
        return
    problems = page_problems(nbformat.read(Path(path), as_version=4))
    if problems:
        raise RealFramesError(
            f"{Path(path).name} ({data} data) is not published: {len(problems)} image(s) may "
            f"show frames of the real dataset ({'; '.join(problems[:3])}"
            f"{' ...' if len(problems) > 3 else ''}). Figures must come from gaitlib.figures "
            "(which declare what they draw) in a notebook that called gaitlib.report.study.setup()")


def unpublishable(book: str | os.PathLike) -> dict[str, list[str]]:
    """The published pages under ``book`` (``*.ipynb``) made from real data that hold an image
    which may show its frames: page name -> problems (:func:`page_problems`).  ``gaitlib
    reproduce`` refuses to build a book with any."""
    import nbformat

    found = {}
    for path in sorted(Path(book).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        data = str(nb.metadata.get("papermill", {}).get("parameters", {}).get("data", "synthetic"))
        problems = [] if is_synthetic_source(data) else page_problems(nb)
        if problems:
            found[path.name] = problems
    return found
