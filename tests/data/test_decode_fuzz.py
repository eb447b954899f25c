"""Fuzzing (hypothesis) of image files organisers read from strangers: every input decodes to the asked shape
or is a one-line BadImage, never another exception or a hang (the deadline)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.data.decode import BadImage, decode_image
from helpers import fuzz_file as written, remove_fuzz_files

FUZZ = settings(max_examples=300, deadline=3000, suppress_health_check=[HealthCheck.too_slow],
                database=None, derandomize=True)


def _seed_images() -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    found = []
    for fmt, mode in (("PNG", "RGB"), ("PNG", "L"), ("JPEG", "RGB"), ("BMP", "RGB"), ("GIF", "P"), ("PNG", "RGBA"),
                      ("TIFF", "CMYK"), ("WEBP", "RGB")):
        channels = {"RGB": 3, "L": 1, "P": 1, "RGBA": 4, "CMYK": 4}[mode]
        array = rng.integers(0, 256, size=(8, 8, channels), dtype=np.uint8)
        image = Image.fromarray(array[..., 0] if channels == 1 else array, mode="L" if mode == "P" else mode)
        buffer = io.BytesIO()
        (image.convert("P") if mode == "P" else image).save(buffer, format=fmt)
        found.append(buffer.getvalue())
    return found


SEEDS = _seed_images()


@st.composite
def image_bytes(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))])


@FUZZ
@given(st.one_of(image_bytes(), st.binary(max_size=300)), st.sampled_from([1, 3]), st.booleans(),
       st.sampled_from([".png", ".jpg", ".bmp", ".gif", ".tif", ".webp"]))
def test_image_decoding_fuzz(data, channels, resize, suffix):
    try:
        array = decode_image(written(data, "image" + suffix), (8, 8), channels, resize)
    except BadImage as error:
        assert "\n" not in str(error)
        return
    assert array.shape == (8, 8, channels) and array.dtype == np.uint8


@pytest.fixture(autouse=True, scope="module")
def _cleanup():
    yield
    remove_fuzz_files()
