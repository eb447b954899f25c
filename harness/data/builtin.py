"""Built-in datasets, registered through the ``harness`` entry-point group like any plugin."""

from __future__ import annotations

from .. import hookimpl
from ..specs import DatasetSpec


@hookimpl
def harness_register_datasets():
    return [
        DatasetSpec(
            name="digits",
            factory="harness.data.digits:digits",
            description="scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes); the embedded default",
            params={"val_fraction": 0.15, "test_fraction": 0.15, "seed": 0},
        ),
        DatasetSpec(
            name="tiny-imagenet",
            factory="harness.data.tiny_imagenet:tiny_imagenet",
            description="Tiny ImageNet (200 classes, 64x64 RGB) from the tiny-imagenet-200 folder or zip",
            params={"source": None, "download": False, "url": "http://cs231n.stanford.edu/tiny-imagenet-200.zip"},
            needs_source=True,
        ),
        DatasetSpec(
            name="image-folder",
            factory="harness.data.image_folder:image_folder",
            description="Any folder with one sub-folder of images per class",
            params={
                "source": None,
                "image_size": None,
                "channels": 3,
                "val_fraction": 0.15,
                "test_fraction": 0.15,
                "seed": 0,
            },
            needs_source=True,
        ),
    ]
