"""No frame of a real dataset is drawn or published: the figure functions refuse real frames, and
publishing refuses a real-data page with an image that does not declare what it shows."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gaitlib.figures import plot_local_volumes, plot_ssfl_selection, plot_synthetic_samples  # noqa: E402
from gaitlib.figures._common import RealFramesError, declare_frames, frames_declaration  # noqa: E402
from gaitlib.publish.reproduce import reproduce  # noqa: E402
from gaitlib.report import frames  # noqa: E402
from tests.conftest import make_store  # noqa: E402
from tests.test_reproduce import PARAMS, casia_root, write_notebook  # noqa: E402


def test_silhouette_figures_refuse_frames_of_a_real_dataset(tmp_path):
    sils = np.zeros((6, 16, 11), np.float32)
    with pytest.raises(RealFramesError, match="refusing to draw frames of 'casia-b'"):
        plot_ssfl_selection(sils, np.array([0, 5]), source="casia-b")
    with pytest.raises(RealFramesError):
        plot_local_volumes({"volumes": {}}, source="oumvlp")
    with pytest.raises(RealFramesError):
        plot_synthetic_samples(make_store(tmp_path / "real", dataset="casia-b"))
    with pytest.raises(TypeError):  # the source is required: no default to fall back on
        plot_ssfl_selection(sils, np.array([0, 5]))
    fig = plot_ssfl_selection(sils, np.array([0, 5]), source="synthetic")
    assert frames_declaration(fig) == "synthetic"
    plt.close("all")


def test_a_figure_says_what_its_raster_images_show():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert frames_declaration(fig) == "none"  # lines, bars, scatter: no raster image
    ax.imshow(np.zeros((4, 4)))
    assert frames_declaration(fig) == "undeclared"  # an imshow nobody vouched for
    assert frames_declaration(declare_frames(fig, "none")) == "none"
    with pytest.raises(RealFramesError):
        declare_frames(fig, "casia-b")
    plt.close("all")


def test_displayed_figures_carry_their_declaration():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        frames.install()
        fig, ax = plt.subplots()
        ax.imshow(np.zeros((4, 4)))
        data, metadata = shell.display_formatter.format(fig)
        assert "image/png" in data and metadata["image/png"] == {frames.METADATA_KEY: "undeclared"}
        data, metadata = shell.display_formatter.format(declare_frames(fig, "synthetic"))
        assert metadata["image/png"] == {frames.METADATA_KEY: "synthetic"}
    finally:
        InteractiveShell.clear_instance()
        plt.close("all")


def _page(*outputs) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data=d, metadata=m) for d, m in outputs]
    nb.cells = [nbformat.v4.new_markdown_cell("# page"), cell]
    return nb


def test_page_check(tmp_path):
    png = {"image/png": "iVBOR"}
    declared = _page((png, {"image/png": {frames.METADATA_KEY: "none"}}),
                     (png, {"image/png": {frames.METADATA_KEY: "synthetic"}}),
                     ({"text/markdown": "| a | b |"}, {}))
    assert frames.page_problems(declared) == []
    bad = _page((png, {}), ({"text/html": '<img src="data:image/png;base64,AAA">'}, {}),
                ({"image/jpeg": "AAA"}, {"image/jpeg": {frames.METADATA_KEY: "casia-b"}}))
    assert frames.page_problems(bad) == [
        "cell 1: an image/png image whose frames are undeclared",
        "cell 1: an image embedded in text/html",
        "cell 1: an image/jpeg image whose frames are casia-b"]
    path = tmp_path / "page.ipynb"
    nbformat.write(bad, path)
    frames.check_page(path, {"data": "synthetic"})  # the synthetic edition may show its walker
    with pytest.raises(RealFramesError, match="page.ipynb \\(casia-b data\\) is not published"):
        frames.check_page(path, {"data": "casia-b"})


SETUP = ("import matplotlib.pyplot as plt, numpy as np\n"
         "from gaitlib.report import study\nstudy.setup()")


def test_publishing_refuses_a_real_data_page_with_an_undeclared_image(tmp_path):
    nbs = tmp_path / "notebooks"
    # an imshow drawn by hand: it may hold frames, and nothing vouches for it
    write_notebook(nbs / "cstl-f7.ipynb", PARAMS, SETUP, "plt.imshow(np.zeros((8, 8)));")
    # a line plot and a figure that declares it draws the synthetic walker
    write_notebook(nbs / "cstl-f6.ipynb", PARAMS, SETUP, "plt.plot([0, 1]);",
                   "from gaitlib.figures._common import declare_frames\n"
                   "fig, ax = plt.subplots(); ax.imshow(np.zeros((8, 8)))\n"
                   "declare_frames(fig, 'synthetic');")
    root = tmp_path / "site"
    (root / "book").mkdir(parents=True)
    runs = reproduce(profile="smoke", data="casia-b", data_root=casia_root(tmp_path),
                     only=["cstl-f6", "cstl-f7"], build=False, root=root,
                     runs_dir=tmp_path / "runs", notebooks_dir=nbs, jobs=1)
    status = {r.notebook: r for r in runs}
    assert status["cstl-f7"].status == "failed"
    assert "may show frames of the real dataset" in status["cstl-f7"].message
    assert not (root / "book" / "cstl-f7.ipynb").exists()
    assert status["cstl-f6"].status == "ok", status["cstl-f6"]
    published = nbformat.read(root / "book" / "cstl-f6.ipynb", as_version=4)
    declared = [o["metadata"]["image/png"][frames.METADATA_KEY] for c in published.cells
                for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert declared == ["none", "synthetic"]


def test_pages_on_real_data_draw_the_synthetic_walker(tmp_path):
    from gaitlib.report import study
    from gaitlib.runs.cache import Run, RunSpec
    from gaitlib.training.config import TrainConfig

    def run_on(store) -> Run:
        config = TrainConfig()
        config.data.store, config.data.resolution = str(store.path), 32
        config.data.split = ""
        return Run(RunSpec.of("cstl"), config, tmp_path / "run", True, 0.0)

    real = study.shown_sequence(run_on(make_store(tmp_path / "casia-b", dataset="casia-b")))
    assert real.source == "synthetic" and "never shows frames of the real dataset" in real.label
    assert real.frames.shape[1:] == (32, 22) and 0 < len(real.frames) <= 30
    assert float(real.frames.max()) <= 1.0 and float(real.frames.sum()) > 0  # a walker, not blank
    own = study.shown_sequence(run_on(make_store(tmp_path / "synthetic", subjects=("001", "002"))))
    assert own.source == "synthetic" and own.label.startswith("test sequence 002/")


def test_the_published_book_shows_no_real_frames():
    """Every page committed in book/ that was made from real data declares each image: no
    CASIA-B frame (or image of one) is in the repository's published pages."""
    from gaitlib.publish.reproduce import REPO

    assert frames.unpublishable(REPO / "book") == {}
