"""The command line starts fast: heavy libraries load only inside the command that needs them."""

import subprocess
import sys

from gaitlib.publish.reproduce import REPO

HEAVY = ("torch", "pandas", "matplotlib", "scipy")


def test_cli_start_up_imports_no_heavy_library():
    # A fresh interpreter: this test process has long imported everything.
    code = ("import sys, gaitlib.cli\n"
            "gaitlib.cli.build_parser()\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "", f"imported at start-up: {done.stdout.strip()}"


def test_help_lists_commands_and_models():
    done = subprocess.run([sys.executable, "-m", "gaitlib", "train", "--help"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    text = " ".join(done.stdout.split())  # argparse wraps lines to the terminal width
    assert "model name: cstl, gaitgl, gaitmm, gaitpart, gaitset, local3d" in text


def test_cli_model_names_come_from_the_registry():
    # a model registered by another package's entry point shows in --model without editing
    # gaitlib, and listing the models imports neither the model nor torch
    code = ("import sys\nfrom importlib import metadata\n"
            "from gaitlib.models import registry\n"
            "point = metadata.EntryPoint('mynet', 'mypkg.mynet:MyNet', registry.ENTRY_POINT_GROUP)\n"
            "metadata.entry_points = lambda group=None: [point] if group == registry.ENTRY_POINT_GROUP "
            "else []\n"
            "import gaitlib.cli\n"
            "parser = gaitlib.cli.build_parser()\n"
            "print(parser.parse_args(['train', '--model', 'mynet', '--data', 'x']).model)\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["mynet", "False"]


def test_lazy_package_attributes_resolve():
    import gaitlib.data
    import gaitlib.training
    from gaitlib.data.store import Store
    from gaitlib.training.trainer import train

    assert gaitlib.data.Store is Store and gaitlib.training.train is train
    assert "Store" in dir(gaitlib.data) and "train" in dir(gaitlib.training)
    try:
        gaitlib.training.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("unknown names must raise AttributeError")
