"""The restricted unpickler: numpy arrays load, anything that could run code is refused."""

import os
import pickle

import numpy as np
import pytest

from gaitlib.data.safe_pickle import UnsafePickleError, load_numpy_pickle


class _WritesMarker:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _OpensMarker:
    """Unpickling this calls builtins.open(marker, 'w'), creating the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _dump(path, obj, protocol=None):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_uint8_array_roundtrips_for_every_protocol(tmp_path, protocol):
    rng = np.random.default_rng(protocol)
    arr = rng.integers(0, 256, size=(7, 64, 64), dtype=np.uint8)
    loaded = load_numpy_pickle(_dump(tmp_path / "a.pkl", arr, protocol))
    assert type(loaded) is np.ndarray and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, arr)


def test_non_contiguous_and_other_dtypes_load(tmp_path):
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)[:, ::2]
    np.testing.assert_array_equal(load_numpy_pickle(_dump(tmp_path / "f.pkl", arr)), arr)


@pytest.mark.realdata
def test_pickle_as_unpack_py_writes_it(tmp_path, real_casia_dir):
    """unpack.py uses a plain pickle.dump of the array: the format of OpenGait's trees."""
    import subprocess
    import sys

    subprocess.run([sys.executable, str(real_casia_dir / "unpack.py"), str(tmp_path),
                    "--subjects", "001", "--conds", "nm-01", "--views", "090"], check=True,
                   capture_output=True)
    arr = load_numpy_pickle(tmp_path / "001" / "nm-01" / "090" / "090.pkl")
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[1:] == (64, 64)
    assert set(np.unique(arr)) <= {0, 255} and len(arr) > 5


@pytest.mark.parametrize("payload", [_WritesMarker, _OpensMarker])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = _dump(tmp_path / "evil.pkl", payload(marker))
    with pytest.raises(UnsafePickleError) as info:
        load_numpy_pickle(path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and "refused global" in message
    assert ("system" in message) if payload is _WritesMarker else ("open" in message)


def test_malicious_global_hidden_inside_an_array_pickle_is_refused(tmp_path):
    """An object array whose element runs code: the global is refused before it is called."""
    marker = tmp_path / "pwned"
    arr = np.empty(1, dtype=object)
    arr[0] = _WritesMarker(marker)
    with pytest.raises(UnsafePickleError):
        load_numpy_pickle(_dump(tmp_path / "obj.pkl", arr))
    assert not marker.exists()


@pytest.mark.parametrize("obj", [[1, 2, 3], {"frames": 1}, "text", 3,
                                 [np.zeros((2, 2), np.uint8)]])
def test_non_array_objects_are_refused(tmp_path, obj):
    path = _dump(tmp_path / "x.pkl", obj)
    with pytest.raises(UnsafePickleError, match="not a numpy array"):
        load_numpy_pickle(path)


def test_object_array_of_builtins_is_refused(tmp_path):
    arr = np.array([1, "a", None], dtype=object)  # needs no global beyond numpy's own
    with pytest.raises(UnsafePickleError, match="object arrays"):
        load_numpy_pickle(_dump(tmp_path / "o.pkl", arr))


def test_ndarray_subclass_is_refused(tmp_path):
    with pytest.raises(UnsafePickleError, match="refused global"):
        load_numpy_pickle(_dump(tmp_path / "m.pkl", np.ma.masked_array([1, 2], mask=[0, 1])))


def test_codecs_encode_only_for_latin1(tmp_path):
    # Protocol 0-2 pickles encode bytes as _codecs.encode(text, 'latin1'); a hand-made pickle
    # asking for another codec is refused.
    evil = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    (tmp_path / "c.pkl").write_bytes(evil)
    with pytest.raises(UnsafePickleError, match="encoding"):
        load_numpy_pickle(tmp_path / "c.pkl")


def test_corrupt_file_raises_an_ordinary_error(tmp_path):
    data = pickle.dumps(np.zeros((3, 64, 64), np.uint8))
    (tmp_path / "t.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception) as info:
        load_numpy_pickle(tmp_path / "t.pkl")
    assert not isinstance(info.value, UnsafePickleError)
