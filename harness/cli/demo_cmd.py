"""``harness demo``: the whole competition on the embedded digits dataset.

Builds a hidden perturbed split from the digits test images (recipe
``submissions/digits-recipe.toml``), scores every example submission with its
``cpu`` profile in child processes, writes the leaderboard CSV and a bar chart,
and shows the leaderboard. The recipe's attack track runs the example attack
submission and the baselines against every defense: the attack leaderboard and
the attacks x defenses matrix picture follow. Last comes the static site
(``runs/demo/site/index.html``: both leaderboards and a page per submission with its
pictures). A submission whose cpu profile needs a GPU is skipped on a CPU-only machine
with a visible note. A rerun reuses the split and every finished score.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console

RECIPE = "digits-recipe.toml"
PROFILE = "cpu"
#: validation images each defense's child explains for its site page (harness score --explain)
EXPLAIN = 4


def gpu_available() -> bool:
    """Whether a GPU is visible to either installed framework (imports it; fine outside start-up)."""
    from ..frameworks import framework_available

    if framework_available("torch"):
        import torch

        if torch.cuda.is_available():
            return True
    return False


def skipped_on_this_machine(folders: list[Path], profile: str) -> dict[str, str]:
    """Submissions whose profile says requires_gpu, when no GPU is here: name -> visible note."""
    from ..submission import read_toml

    needs = {}
    for folder in folders:
        data = read_toml(folder / "submission.toml")
        settings = (data.get("profiles") or {}).get(profile) or {}
        if settings.get("requires_gpu"):
            needs[data.get("name", folder.name)] = (
                f"skipped: its '{profile}' profile needs a GPU ({settings.get('description') or 'heavy model'})")
    return needs if needs and not gpu_available() else {}


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the split, results, leaderboard, chart."),
    submissions: Path = typer.Option(Path("submissions"), "--submissions", help="Folder of example submissions."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds per submission (train + predict)."),
    fresh: bool = typer.Option(False, "--fresh", help="Rebuild the split and rescore everything."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Progress bars on a terminal, a line per stage with elapsed time otherwise."),
) -> None:
    """Run the main job on the embedded digits: hidden split, score the examples, leaderboard."""
    from ..progress import stage

    with stage("demo", enabled=progress) as report:
        _demo(out, submissions, timeout, fresh, progress, report)


def _demo(out: Path, submissions: Path, timeout: float, fresh: bool, progress: bool, report) -> None:
    """The demo's steps, each reported to the stage ``report``."""
    import shutil

    from ..data import prepare_dataset
    from ..errors import UsageError
    from ..plots import leaderboard_chart
    from ..scoring.store import latest
    from ..sandbox.choice import choose_isolation
    from ..scoring.scorer import entries_from_paths, score_submissions
    from ..scoring.split import build_split, load_recipe, verify_split
    from ..plots import attack_matrix_chart
    from ..scoring.scorer import attack_leaderboard_path
    from .score_cmd import _printer, show_attack_leaderboard, show_leaderboard
    from .split_cmd import split_table

    recipe_path = submissions / RECIPE
    if not recipe_path.is_file():
        raise UsageError(f"{recipe_path}: the demo's split recipe is missing",
                         hint="run the demo from the repository root, or pass --submissions FOLDER")
    if fresh and out.exists():
        shutil.rmtree(out)
    prepare_dataset("digits", progress=progress)
    report.line("dataset digits ready")
    split_dir = out / "split"
    try:
        split_hash = verify_split(split_dir)
        console.print(f"hidden split: reusing {split_dir} (hash {split_hash[:16]})")
    except UsageError:
        console.rule("1. hidden split")
        summary = build_split(load_recipe(recipe_path), split_dir, references=out / "references", progress=progress)
        console.print(split_table(summary))
    report.line(f"hidden split ready ({split_dir})")
    entries = entries_from_paths([submissions])
    skip = skipped_on_this_machine([e.root for e in entries], PROFILE)
    attacks = sum(entry.track == "attack" for entry in entries)
    console.rule(f"2. scoring {len(entries) - attacks} defenses and {attacks} attack submission"
                 f"{'s' if attacks != 1 else ''} ({PROFILE} profile)")
    try:
        isolation = choose_isolation("auto")
    except UsageError as exc:  # the demo scores the project's own examples: trusted code, said so out loud
        console.print(f"[yellow]note:[/] {exc.message}; the demo scores its own example submissions without "
                      "isolation (--sandbox none); harness score would refuse", highlight=False, soft_wrap=True)
        isolation = choose_isolation("none")
    console.print(f"isolation: {isolation.kind} ({isolation.reason})", highlight=False, soft_wrap=True)
    records = score_submissions(entries, split_dir, out / "results.sqlite", out / "leaderboard.csv",
                                profile=PROFILE, timeout=timeout, work_dir=out / "score", on_event=_printer,
                                skip=skip, sandbox=isolation.kind, progress=progress, explain=EXPLAIN)
    report.line(f"{len(records)} submissions scored or failed")
    console.rule("3. leaderboard")
    show_leaderboard(out / "leaderboard.csv", private=False)
    for name, note in skip.items():
        console.print(f"[yellow]note:[/] {name} {note}", highlight=False)
    chart = leaderboard_chart(latest(records), out / "leaderboard.png")  # one bar group per submission
    console.print(f"leaderboard CSV {out / 'leaderboard.csv'}, chart {chart}, results store {out / 'results.sqlite'}",
                  highlight=False, soft_wrap=True)
    if records and show_attack_leaderboard(out / "results.sqlite", records[0].split_hash, private=False):
        from ..scoring.store import ResultStore

        with ResultStore(out / "results.sqlite") as store:
            matrix = attack_matrix_chart(store.matrix_records(records[0].split_hash), out / "matrix.png")
        console.print(f"attack leaderboard CSV {attack_leaderboard_path(out / 'leaderboard.csv')}, "
                      f"matrix {matrix}", highlight=False, soft_wrap=True)
    from ..site import build_site

    site = build_site(out / "results.sqlite", out / "site")
    report.line(f"site built ({site.pages} pages)")
    console.print(f"static site {site.out / 'index.html'} ({site.pages} pages, {site.bytes / 1e6:.1f} MB; "
                  "open it in a browser, or publish the folder on any web host)", highlight=False, soft_wrap=True)
