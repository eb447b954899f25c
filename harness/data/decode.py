"""Decode one image file to uint8 HWC with the quirks of real data handled.

Grayscale, palette, CMYK and RGBA images are converted to the dataset's
channel count (the real Tiny ImageNet has single-channel JPEGs). Pillow does
the decoding; a truncated or corrupt file raises :class:`BadImage`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class BadImage(Exception):
    """An image file that cannot be used, with the reason."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def decode_image(path: Path, size: tuple[int, int], channels: int, resize: bool) -> np.ndarray:
    """Return the image at ``path`` as uint8 (H, W, channels); raise :class:`BadImage`."""
    height, width = size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # decode fully now: truncation shows up here
                mode = "L" if channels == 1 else "RGB"
                if image.mode != mode:
                    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                        image = image.convert("RGBA")
                        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                        image = Image.alpha_composite(background, image)
                    image = image.convert(mode)
                if image.size != (width, height):
                    if not resize:
                        raise BadImage(
                            path, f"image is {image.size[0]}x{image.size[1]}, expected {width}x{height}"
                        )
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
    except BadImage:
        raise
    except FileNotFoundError:
        raise BadImage(path, "file not found") from None
    except UnidentifiedImageError:
        raise BadImage(path, "not a readable image (corrupt or unknown format)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(path, f"cannot decode: {exc}") from None
    return array.reshape(height, width, channels)


def image_size_of(path: Path) -> tuple[int, int]:
    """(height, width) of an image file without decoding it."""
    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except (OSError, UnidentifiedImageError) as exc:
        raise BadImage(path, f"cannot read image header: {exc}") from None
