"""The built-in renderer: deterministic, varied, and the size asked for."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from services.generator.providers.procedural import encode_png, render


def test_same_prompt_seed_and_size_give_the_same_pixels():
    assert np.array_equal(render("a lake at dawn", 7, 320, 200), render("a lake at dawn", 7, 320, 200))


def test_prompt_seed_and_negative_prompt_each_change_the_picture():
    base = render("a lake at dawn", 7, 128, 128)
    for other in (
        render("a lake at dusk", 7, 128, 128),
        render("a lake at dawn", 8, 128, 128),
        render("a lake at dawn", 7, 128, 128, negative_prompt="sun"),
    ):
        assert np.abs(base.astype(int) - other.astype(int)).mean() > 2


def test_pictures_are_rich_not_flat():
    for prompt in ("neon city at night", "snowy mountains", "autumn forest", "x"):
        pixels = render(prompt, 1, 256, 256)
        assert pixels.shape == (256, 256, 3) and pixels.dtype == np.uint8
        assert pixels.std() > 10
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500


def test_night_prompts_are_darker_than_day_prompts():
    night = np.mean([render("night sky", s, 128, 128).mean() for s in range(4)])
    day = np.mean([render("sunny day", s, 128, 128).mean() for s in range(4)])
    assert night < day - 30


def test_non_square_sizes_encode_to_a_png_of_that_size():
    image = Image.open(io.BytesIO(encode_png(render("wide", 3, 2048, 64))))
    assert image.format == "PNG" and image.size == (2048, 64)
