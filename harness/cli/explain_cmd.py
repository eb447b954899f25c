"""``harness explain``: what a trained model looks at, clean and attacked, as a PNG grid and a PNG of its first
convolution layers' feature maps (docs/pictures.md)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import console
from .submission_cmd import PROFILE_OPTION, RUNS_OPTION

def explain(
    submission: Path = typer.Argument(..., help="Trained submission folder (with submission.toml)."),
    images: Optional[List[Path]] = typer.Argument(None, help="Image files (default: validation images)."),
    profile: Optional[str] = PROFILE_OPTION,
    runs: Path = RUNS_OPTION,
    attack: str = typer.Option("fgsm", "--attack", help="Attack plugin making the adversarial versions."),
    eps: float = typer.Option(8 / 255, "--eps", help="L-inf budget of the attack in pixel space [0, 1]."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated class names: one validation "
                                          "image of each (default: the first --count classes)."),
    count: int = typer.Option(4, "--count", min=1, max=32, help="Validation images (one per class)."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Grad-CAM layer name (default: last convolution)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the attack."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG file of the grid (default: RUNS/<submission>/"
                                       "<profile>/explain.png); the feature maps go beside it as "
                                       "<stem>-activations.png (default: activations.png)."),
) -> None:
    """Saliency (positive / negative), Grad-CAM and top-5 of clean and adversarial images (one PNG grid), and the
    first convolution layers' strongest feature maps of each, clean above adversarial (a second PNG)."""
    from ..errors import UsageError
    from ..explain import explain_model, pick_images, read_images
    from ..submission import load_submission
    from ..workflow import default_run_dir, load_model

    loaded_submission = load_submission(submission, profile)
    run_dir = default_run_dir(loaded_submission, runs)
    model = load_model(run_dir)
    if images:
        pictures, labels = read_images(images, model.info["input_shape"]), None
    else:
        from ..data import load_dataset

        dataset = load_dataset(loaded_submission.dataset, **dict(loaded_submission.dataset_params))
        if "val" not in dataset.splits or not dataset.split("val").labelled:
            raise UsageError(f"dataset '{loaded_submission.dataset}' has no labelled val split",
                             hint="give image files: harness explain SUBMISSION IMAGE...")
        names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
        pictures, labels = pick_images(dataset.split("val"), model.info["class_names"], names, count)
    maps = run_dir / "activations.png" if out is None else out.with_name(f"{out.stem}-activations.png")
    target = explain_model(model, pictures, out or run_dir / "explain.png", labels, attack=attack, eps=eps,
                           seed=seed, layer=layer, activations=maps)
    console.print(f"[green]explained[/] {loaded_submission.name} ({len(pictures)} images) -> {target}",
                  highlight=False, soft_wrap=True)
    console.print(f"[green]feature maps[/] -> {maps}", highlight=False, soft_wrap=True)
