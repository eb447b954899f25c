"""``harness submission new / validate / pack`` and ``harness train`` / ``harness evaluate`` (participants)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.table import Table

from .common import console, error_console, parse_params

app = typer.Typer(help="Start, check and pack submissions.", no_args_is_help=True)


@app.command("validate")
def validate(
    paths: List[Path] = typer.Argument(..., help="Submission folders (or folders of them, e.g. submissions/) or "
                                       "archives of harness submission pack (.tar.gz)."),
    sandbox: str = typer.Option("auto", "--sandbox", help="Where a submission's own plugin modules are imported: "
                                "auto (bwrap, ns or landlock, as harness score), one of those, or none (in this "
                                "process: only for code you trust)."),
) -> None:
    """Report every problem of each submission.toml, each with its field and a suggestion.

    A submission's own plugin modules are imported only in a sandboxed child (its code may be hostile)."""
    import tempfile

    from ..pack import expand_archives
    from ..submission import find_submissions, submission_track
    from ..submission_check import validate_isolated

    failed = 0
    with tempfile.TemporaryDirectory(prefix="harness-validate-") as unpacked:
        expanded = expand_archives(list(paths), unpacked)
        archives = {folder.resolve(): path for path, folder in zip(paths, expanded) if Path(path) != folder}
        for folder in find_submissions(expanded):
            shown = archives.get(folder.resolve(), folder)
            problems = validate_isolated(folder, sandbox)
            if not problems:
                track = " (attack track)" if submission_track(folder) == "attack" else ""
                console.print(f"[green]ok[/] {shown}{track}")
                continue
            failed += 1
            error_console.print(f"[bold red]{shown}[/]: {len(problems)} problem(s)", highlight=False)
            for problem in problems:
                error_console.print(f"  {problem}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(2)


@app.command("new")
def new(
    name: str = typer.Argument(..., help="Submission name; the folder OUT/NAME is created (never overwritten)."),
    framework: str = typer.Option("torch", "--framework", "-f", help="torch or tf."),
    dataset: str = typer.Option("digits", "--dataset", help="A registered dataset (harness plugins dataset)."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="A backbone of the framework (default: "
                                           "small-cnn for torch, nsl-cnn for tf; with --with-plugin, its own)."),
    defense: Optional[str] = typer.Option(None, "--defense", help="A defense of the framework (default: standard; "
                                          "with --with-plugin and torch, its own)."),
    with_plugin: bool = typer.Option(False, "--with-plugin", help="Also team_plugins.py (a backbone, an "
                                     "augmentation and, for torch, a defense) and test_team_plugins.py."),
    out: Path = typer.Option(Path("."), "--out", help="Folder in which NAME is created."),
) -> None:
    """Create a submission folder: a commented submission.toml (cpu and gpu profiles) that validates, trains and
    scores as written."""
    from ..scaffold import new_submission

    target = new_submission(name, out=out, framework=framework, dataset=dataset, backbone=backbone,
                            defense=defense, with_plugin=with_plugin)
    console.print(f"[green]created[/] {target}; next: harness submission validate {target} && "
                  f"harness train {target} -P cpu", highlight=False, soft_wrap=True)


@app.command("pack")
def pack(
    folder: Path = typer.Argument(..., help="Submission folder (with submission.toml)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Archive file, or a folder for NAME-<hash12>.tar.gz "
                                       "(default: that name in the current folder)."),
) -> None:
    """Write a reproducible .tar.gz of a submission (no caches, runs or hidden files) named after its content
    hash; harness score and harness submission validate accept it."""
    from ..pack import pack_submission

    target = pack_submission(folder, out)
    console.print(f"[green]packed[/] {folder} -> {target}", highlight=False, soft_wrap=True)


PROFILE_OPTION = typer.Option(None, "--profile", "-P", help="Budget profile from submission.toml, e.g. cpu or gpu.")
RUNS_OPTION = typer.Option(Path("runs"), "--runs", help="Where models go: RUNS/<submission>/<profile>.")


def train(
    submission: Path = typer.Argument(..., help="Submission folder (with submission.toml)."),
    profile: Optional[str] = PROFILE_OPTION,
    runs: Path = RUNS_OPTION,
    out: Optional[Path] = typer.Option(None, "--out", help="Model folder (default: RUNS/<submission>/<profile>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the folder's checkpoint."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Progress: bars on a terminal, a timed line per stage when piped."),
) -> None:
    """Train a submission: model artifact (weights + spec), metrics.json, training_curves.png. For an attack
    submission (track = "attack"): its surrogate model."""
    from ..submission import load_submission
    from ..workflow import default_run_dir, train_submission

    loaded = load_submission(submission, profile)
    target = out or default_run_dir(loaded, runs)
    train_submission(loaded, target, resume=resume, progress=progress)
    console.print(f"[green]trained[/] {loaded.name} -> {target} (model.json, weights, metrics.json, "
                  "training_curves.png)")


def evaluate(
    submissions: List[Path] = typer.Argument(..., help="Trained submission folders (or folders of them)."),
    profile: Optional[str] = PROFILE_OPTION,
    runs: Path = RUNS_OPTION,
    eps: float = typer.Option(8 / 255, "--eps", help="Budget of the attacks in pixel space [0, 1] (unless an "
                              "--attack sets eps=...); with --robust also an ensemble budget."),
    bim_steps: int = typer.Option(10, "--bim-steps", min=1, help="BIM iterations of the default BIM set."),
    attack: Optional[List[str]] = typer.Option(None, "--attack", help="A registered attack as NAME[:key=value,...], "
                                               "e.g. pgd:steps=20,restarts=2 (repeatable; default: fgsm and bim). "
                                               "List them: harness plugins attack."),
    split: str = typer.Option("val", "--split", help="Labelled dataset split to evaluate on."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images."),
    seed: int = typer.Option(0, "--seed", help="Seed of augmentations and attacks."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="CSV file (default: RUNS/evaluation.csv)."),
    robust: bool = typer.Option(False, "--robust", help="Also the attack ensemble (PGD, APGD-CE, APGD-T, Square) at "
                                "2/255, 4/255, 8/255 and --eps, each member on the images the ones before it left "
                                "robust (as AutoAttack), with sanity checks (docs/robustness.md)."),
    robust_attack: Optional[List[str]] = typer.Option(
        None, "--robust-attack", help="With --robust: an ensemble member as NAME[:key=value,...], any registered "
        "L-inf attack (repeatable; default: pgd, apgd-ce, apgd-t, square)."),
    corruptions: Optional[str] = typer.Option(None, "--corruptions",
                                              help="With --robust: benchmark, holdout or all corruption suites."),
    apgd_iters: int = typer.Option(100, "--apgd-iters", min=1, help="With --robust: APGD-CE / APGD-T iterations."),
    square_queries: int = typer.Option(5000, "--square-queries", min=1, help="With --robust: Square queries."),
) -> None:
    """Top-1/top-5 on clean, augmented and attacked (default FGSM and BIM) validation sets (rich table and CSV);
    --robust for more. An attack submission: its surrogate model's (trained by harness train)."""
    from ..atomic import write_text
    from ..data import load_dataset
    from ..errors import UsageError
    from ..submission import find_submissions, load_submission
    from ..workflow import default_run_dir, evaluate_model, load_model

    attacks = [parse_choice("--attack", text) for text in attack] if attack else None
    members = _robust_members(robust_attack, apgd_iters, square_queries) if robust else None
    rows = []
    for folder in find_submissions(list(submissions)):
        loaded_submission = load_submission(folder, profile)
        if not loaded_submission.has_surrogate:
            raise UsageError(f"{folder}: attack submission '{loaded_submission.name}' has no model to evaluate "
                             "(no surrogate: [backbone] and [defense])")
        model = load_model(default_run_dir(loaded_submission, runs))
        dataset = load_dataset(loaded_submission.dataset, **dict(loaded_submission.dataset_params))
        if split not in dataset.splits or not dataset.split(split).labelled:
            raise UsageError(f"dataset '{loaded_submission.dataset}' has no labelled split '{split}'")
        data = dataset.split(split)
        count = len(data) if limit is None else min(limit, len(data))
        results = evaluate_model(model, data.images[:count], data.labels[:count], eps=eps, bim_steps=bim_steps,
                                 seed=seed, attacks=attacks)
        if members is not None:
            _robust_report(model, data.images[:count], data.labels[:count], eps, corruptions, seed, members,
                           default_run_dir(loaded_submission, runs) / "robustness")
        for name, values in results.items():
            rows.append({"submission": loaded_submission.name, "framework": loaded_submission.framework,
                         "set": name, "top1": round(values["top1"], 4), "top5": round(values["top5"], 4),
                         "loss": round(values["loss"], 4), "images": values["count"]})
    table = Table(title=f"top-1 / top-5 on the {split} split")  # one row per set: fits 80 columns
    for column in ("submission", "set", "top-1", "top-5", "images"):
        table.add_column(column, justify="left" if column in ("submission", "set") else "right", overflow="fold",
                         style="bold" if column == "submission" else None)
    for row in rows:
        table.add_row(row["submission"], row["set"], f"{row['top1']:.1%}", f"{row['top5']:.1%}", str(row["images"]))
    console.print(table)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    target = csv_path or runs / "evaluation.csv"
    write_text(target, buffer.getvalue())
    console.print(f"CSV: {target}")


def parse_choice(option: str, text: str) -> tuple[str, dict[str, Any]]:
    """``"pgd:steps=20,restarts=2"`` -> ``("pgd", {"steps": 20, "restarts": 2})``; names are checked against the
    registry (did-you-mean), a malformed item is a UsageError naming the option."""
    from ..errors import UsageError
    from ..registry import get_attack

    name, _, rest = text.partition(":")
    items = [item for item in rest.split(",") if item.strip()]
    if not name.strip() or any("=" not in item or not item.partition("=")[0].strip() for item in items):
        raise UsageError(f"{option} '{text}': expected NAME[:key=value,...]", hint="e.g. pgd:steps=20,restarts=2")
    get_attack(name.strip())
    return name.strip(), parse_params(items)


#: the ensemble's default members, with --apgd-iters / --square-queries as their max_iter
ROBUST_DEFAULTS = ("pgd", "apgd-ce", "apgd-t", "square")


def _robust_members(choices: Optional[List[str]], apgd_iters: int, square_queries: int) -> dict[str, dict[str, Any]]:
    """Ensemble members name -> params from --robust-attack (default the four); --apgd-iters and --square-queries
    set max_iter of apgd-ce/apgd-t and square unless given there."""
    from ..errors import UsageError

    chosen = [parse_choice("--robust-attack", text) for text in choices] if choices else [
        (name, {}) for name in ROBUST_DEFAULTS]
    members: dict[str, dict[str, Any]] = {}
    for name, params in chosen:
        if name in members:
            raise UsageError(f"--robust-attack: '{name}' is given twice (ensemble members have distinct names)")
        iterations = {"apgd-ce": apgd_iters, "apgd-t": apgd_iters, "square": square_queries}.get(name)
        members[name] = {"max_iter": iterations, **params} if iterations is not None else params
    return members


def _robust_report(model, images, labels, eps: float, corruptions: Optional[str], seed: int, attacks: dict,
                   out: Path) -> None:
    """Run the robustness evaluation for one model; print its table and flags, write its files to ``out``."""
    from ..robustness import evaluate_robustness

    report = evaluate_robustness(model.runtime, model.model, images, labels, extra_eps=(eps,),
                                 attacks=attacks, corruptions=corruptions, seed=seed, out_dir=out,
                                 num_classes=int(model.info["num_classes"]))
    table = Table(title=f"{model.submission.name}: robust accuracy (clean {report.clean_accuracy:.1%})")
    table.caption = ("each attack's column: accuracy after it and the attacks left of it (each attacks the images "
                     "still robust, as AutoAttack)" if report.cascade else None)
    table.add_column("eps (L-inf)", overflow="fold")  # narrow terminals wrap headers, never "…"
    for attack in report.attack_accuracy:
        table.add_column(attack, justify="right", overflow="fold")
    table.add_column("ensemble (worst case)", justify="right", style="bold", overflow="fold")
    for value in report.eps:
        cells = [f"{report.attack_accuracy[a].get(value, float('nan')):.1%}" for a in report.attack_accuracy]
        table.add_row(f"{value * 255:.3g}/255", *cells, f"{report.robust_accuracy[value]:.1%}")
    console.print(table)
    if report.corruption is not None:
        for group in ("benchmark", "holdout"):
            value = report.corruption.mean_accuracy(group)
            if value is not None:
                console.print(f"corruption accuracy ({group}): {value:.1%}")
    flags = report.flags
    console.print(f"sanity flags: {', '.join(flags)}" if flags else "sanity flags: none",
                  style="red" if flags else "green")
    console.print(f"robustness files: {out}")
