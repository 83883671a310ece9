"""Golden cases for OpenGait's pretreatment, each expected value derived from the algorithm:
threshold, row crop, aspect-preserving resize to height 64, column-mass centring, padding."""

import numpy as np
import pytest

from gaitlib.data.pretreatment import (
    FRAME_SIZE,
    MIN_FRAMES,
    MIN_PIXEL_SUM,
    crop_width,
    pretreat_frame,
    pretreat_sequence,
)


def rect_frame(top, left, height, width, shape=(240, 320), value=255):
    img = np.zeros(shape, dtype=np.uint8)
    img[top : top + height, left : left + width] = value
    return img


def median_column(frame):
    """The first column where the cumulative column mass exceeds half the total."""
    mass = frame.sum(axis=0, dtype=np.int64).cumsum()
    return int(np.argmax(mass > mass[-1] / 2))


def test_constants_are_opengaits():
    assert (MIN_PIXEL_SUM, MIN_FRAMES, FRAME_SIZE) == (10000, 5, 64)


def test_pixel_sum_threshold_is_inclusive():
    # a 10x10 block of value 100 sums to exactly 10000: skipped; value 101 (10100): kept
    assert pretreat_frame(rect_frame(45, 45, 10, 10, shape=(100, 100), value=100)) is None
    kept = pretreat_frame(rect_frame(45, 45, 10, 10, shape=(100, 100), value=101))
    assert kept is not None and kept.shape == (64, 64)
    assert pretreat_frame(np.zeros((240, 320), np.uint8)) is None


def test_output_is_uint8_64x64():
    out = pretreat_frame(rect_frame(30, 100, 150, 50))
    assert out.dtype == np.uint8 and out.shape == (64, 64)
    assert pretreat_frame(rect_frame(0, 0, 100, 40, shape=(100, 100)), size=128).shape == (128, 128)


def test_non_2d_frame_is_an_error():
    with pytest.raises(ValueError):
        pretreat_frame(np.zeros((240, 320, 3), np.uint8))


def test_rows_cropped_so_a_rectangle_fills_the_full_height():
    out = pretreat_frame(rect_frame(100, 150, 40, 20))  # rows 100..139 of 240
    assert (out.max(axis=1) == 255).all()  # every one of the 64 rows holds the shape


def test_row_crop_spans_first_to_last_non_empty_row_across_a_gap():
    # "head" rows 50..59 and "feet" rows 150..159: the crop is 110 rows, scaled by 64/110,
    # so the empty middle (rows 60..149) lands around output rows 6..57, centred near 32
    img = rect_frame(50, 150, 10, 20)
    img[150:160, 150:170] = 255
    out = pretreat_frame(img)
    filled = out.max(axis=1) > 0
    assert filled[0] and filled[63]
    assert not filled[10:54].any()


@pytest.mark.parametrize(("height", "width", "expected_width"), [(80, 40, 32), (80, 20, 16),
                                                                (120, 30, 16)])
def test_resize_keeps_the_aspect_ratio(height, width, expected_width):
    out = pretreat_frame(rect_frame(60, 140, height, width))
    solid_columns = int((out.max(axis=0) >= 128).sum())
    assert abs(solid_columns - expected_width) <= 1


@pytest.mark.parametrize("seed", range(5))
def test_centre_of_column_mass_lands_on_column_32(seed):
    rng = np.random.default_rng(seed)
    img = np.zeros((240, 320), np.uint8)
    # an asymmetric figure: a body plus a heavier blob to one side, all narrow enough
    # that nothing is cut off after resizing
    left = int(rng.integers(0, 280))
    img[40:200, left : left + 12] = 255
    img[int(rng.integers(40, 150)) :][:50, left + 12 : left + 12 + int(rng.integers(4, 20))] = 255
    out = pretreat_frame(img)
    assert out.sum(dtype=np.int64) > 0
    assert median_column(out) == 32


def test_silhouette_at_the_image_edge_is_zero_padded_not_wrapped():
    # 64 rows (no row crop, resize is the identity): columns 0..19 filled plus one column
    # at the far right edge (199). Mass median: 21 columns, half 10.5 -> column 10 is the
    # centre, so output column j shows input column j - 22: output 22..41 = input 0..19,
    # output 0..21 are padding (a wrap-around would bring in input column 199 there).
    img = np.zeros((64, 200), np.uint8)
    img[:, :20] = 255
    img[:, 199] = 255
    out = pretreat_frame(img)
    assert (out[:, :22] == 0).all()
    assert (out[:, 22:42] == 255).all()
    assert (out[:, 42:] == 0).all()


def test_right_edge_is_zero_padded_too():
    img = np.zeros((64, 200), np.uint8)
    img[:, 180:] = 255  # 20 columns touching the right edge; centre 190 -> output 32
    out = pretreat_frame(img)
    assert (out[:, 22:42] == 255).all()
    assert (out[:, :22] == 0).all() and (out[:, 42:] == 0).all()


def test_sequence_keeps_valid_frames_in_order_and_reports_short_ones():
    widths = [10, 20, 30, 40]
    frames = [rect_frame(40, 100, 160, w) for w in widths]
    frames.insert(2, np.zeros((240, 320), np.uint8))  # skipped: empty
    frames.append(rect_frame(40, 100, 5, 5))  # skipped: 25 px * 255 < 10000
    seq = pretreat_sequence(frames)
    assert seq.shape == (4, 64, 64) and seq.dtype == np.uint8
    assert len(seq) < MIN_FRAMES  # the caller (the importer) drops such a sequence
    # height 160 -> 64 scales widths by 0.4: 4, 8, 12, 16 solid columns, in input order
    solid = [int((f.max(axis=0) >= 128).sum()) for f in seq]
    assert solid == sorted(solid) and all(abs(s - 0.4 * w) <= 1 for s, w in zip(solid, widths,
                                                                                   strict=True))


def test_sequence_of_nothing_is_empty_not_an_error():
    seq = pretreat_sequence([np.zeros((240, 320), np.uint8)] * 3)
    assert seq.shape == (0, 64, 64) and seq.dtype == np.uint8


@pytest.mark.parametrize(("side", "cut"), [(64, 10), (128, 20)])
def test_crop_width_removes_the_same_margin_each_side(side, cut):
    frames = np.tile(np.arange(side, dtype=np.int32) % 256, (3, side, 1)).astype(np.uint8)
    out = crop_width(frames)
    assert out.shape == (3, side, side - 2 * cut)  # 64 -> 44, 128 -> 88
    assert out[0, 0, 0] == cut and out[0, 0, -1] == side - cut - 1


@pytest.mark.realdata
def test_already_pretreated_real_frames_are_nearly_unchanged(real_casia_dir, tmp_path):
    """A pretreated frame fills the height and is centred, so a second pass is close to the
    identity; only rows emptied by the binarization of this copy can rescale it a little."""
    import subprocess
    import sys

    from gaitlib.data.safe_pickle import load_numpy_pickle

    subprocess.run([sys.executable, str(real_casia_dir / "unpack.py"), str(tmp_path),
                    "--subjects", "002", "--conds", "nm-01", "--views", "054"],
                   check=True, capture_output=True)
    seq = load_numpy_pickle(tmp_path / "002" / "nm-01" / "054" / "054.pkl")
    again = pretreat_sequence(seq)
    assert again.shape == seq.shape
    a, b = seq >= 128, again >= 128
    iou = (a & b).sum(axis=(1, 2)) / (a | b).sum(axis=(1, 2))
    assert np.median(iou) > 0.95 and iou.min() > 0.7
