"""`bitscout search` writes over a run folder's config.toml, plots, report and journal only
when an earlier search wrote them (user9: a foreign one was replaced or appended to)."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest

from bitscout.cli import main
from bitscout.config import CONFIG_MARKER
from tests.cli.test_search_cli import TOML

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A config and the run folder of a 2-trial search of it."""
    root = tmp_path_factory.mktemp("searched")
    config = root / "cli.toml"
    config.write_text(TOML)
    run = root / "run"
    assert main(["search", str(config), "--out", str(run), "--no-progress", "--n-trials", "2"]) == 0
    return config, run


def _search(config: Path, run: Path, *more: str) -> int:
    return main(["search", str(config), "--out", str(run), "--no-progress", "--n-trials", "3", *more])


def _foreign_journal(path: Path) -> None:
    """A journal of another tool's Optuna study (no bitscout fingerprint)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="theirs")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)


def _matplotlib_png(path: Path) -> None:
    """A plot as matplotlib saves it by default (Software: Matplotlib ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path)
    plt.close(fig)


def test_a_search_writes_its_marks_and_resumes_over_its_own_files(searched, tmp_path: Path, capsys) -> None:
    config, first = searched
    run = tmp_path / "run"
    shutil.copytree(first, run)
    assert (run / "config.toml").read_text().startswith(CONFIG_MARKER + "\n")
    assert b"tEXtSoftware\x00bitscout" in (run / "objective.png").read_bytes()
    assert _search(config, run) == 0  # resumed: every file of the folder is its own
    assert "trials              3" in capsys.readouterr().out


def test_files_an_older_search_wrote_without_marks_are_still_its_own(searched, tmp_path: Path) -> None:
    # Run folders written before the marks: config.toml without the marker line (and no
    # comment), plots saved with matplotlib's default Software text, beside the best.json.
    config, first = searched
    run = tmp_path / "run"
    shutil.copytree(first, run)
    (run / "config.toml").write_text((run / "config.toml").read_text().removeprefix(CONFIG_MARKER + "\n"))
    _matplotlib_png(run / "objective.png")
    assert _search(config, run) == 0
    assert (run / "config.toml").read_text().startswith(CONFIG_MARKER + "\n")
    assert b"tEXtSoftware\x00bitscout" in (run / "objective.png").read_bytes()


@pytest.mark.parametrize(
    ("name", "write", "why"),
    [
        ("config.toml", lambda p: p.write_text("# my own experiment\nmodel = 'mlp'\n"),
         "it does not start with the line a search writes (# bitscout search: ...)"),
        ("objective.png", _matplotlib_png, "it is not a plot a search drew"),
        ("pareto_model_size.png", _matplotlib_png, "it is not a plot a search drew"),
        ("report.html", lambda p: p.write_text("<html><title>my notes</title></html>"),
         "it is not a page bitscout wrote"),
        ("calibration.json", lambda p: p.write_text('{"lr": 0.1}'),
         "it has no \"observer\", \"samples\" and \"ranges\", which a search's calibration.json holds"),
    ],
)
def test_a_file_no_search_wrote_is_refused_and_kept(tmp_path: Path, capsys, name, write, why) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(TOML)
    run = tmp_path / "run"
    run.mkdir()
    write(run / name)
    before = (run / name).read_bytes()
    assert _search(config, run) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: run folder {run}: {run / name} was not written by a bitscout search ({why}), and "
        f"bitscout would replace it with its own {name}; choose another folder (--out DIR), or move the file"
    ), err
    assert (run / name).read_bytes() == before
    assert sorted(p.name for p in run.iterdir()) == [name]


def test_a_commented_config_beside_an_older_searchs_records_is_refused(searched, tmp_path: Path, capsys) -> None:
    # The best.json of a search vouches for files without marks only when they could be
    # its own: a config.toml with comments is the user's.
    config, first = searched
    run = tmp_path / "run"
    shutil.copytree(first, run)
    (run / "config.toml").write_text("# tuned by hand\n" + TOML)
    assert _search(config, run) == 2
    assert "config.toml was not written by a bitscout search" in capsys.readouterr().err
    assert (run / "config.toml").read_text() == "# tuned by hand\n" + TOML


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_another_tools_journal_is_not_appended_to(tmp_path: Path, capsys, workers) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(TOML)
    run = tmp_path / "run"
    run.mkdir()
    _foreign_journal(run / "study.journal")
    before = (run / "study.journal").read_bytes()
    assert _search(config, run, *workers) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: run folder {run}: {run / 'study.journal'} was not written by a bitscout search (it "
        "holds the Optuna study 'theirs', which no bitscout search made), and the search would add its "
        "study to it; choose another folder (--out DIR), or move the file (to share a study on purpose, "
        "give --storage)"
    ]
    assert (run / "study.journal").read_bytes() == before
    assert sorted(p.name for p in run.iterdir()) == ["study.journal"]


def test_a_journal_of_two_bitscout_studies_resumed_many_times_is_its_own(searched, tmp_path: Path) -> None:
    # Each resume appends a create-study operation that Optuna ignores; a second study
    # (--study-name) in the same journal is bitscout's too.
    config, first = searched
    run = tmp_path / "run"
    shutil.copytree(first, run)
    assert _search(config, run) == 0
    assert _search(config, run, "--study-name", "second") == 0
    assert _search(config, run) == 0


def test_a_file_that_is_no_journal_is_refused(tmp_path: Path, capsys) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(TOML)
    run = tmp_path / "run"
    run.mkdir()
    (run / "study.journal").write_text("my diary\n")
    assert _search(config, run) == 2
    assert "(it is not an Optuna journal (its first line is no journal operation))" in capsys.readouterr().err
    assert (run / "study.journal").read_text() == "my diary\n"


def test_compare_replaces_its_own_files_but_not_a_comparison_md_of_the_users(tmp_path: Path, capsys) -> None:
    # user9: `bitscout compare --out DIR` wrote over a comparison.md of the user's.
    config = tmp_path / "cli.toml"
    config.write_text(TOML)
    out = tmp_path / "cmp"
    argv = ["compare", str(config), "--strategies", "random", "--seeds", "1", "--n-trials", "2", "--out", str(out)]
    assert main(argv) == 0
    assert b"tEXtSoftware\x00bitscout" in (out / "best_so_far.png").read_bytes()
    assert main(argv) == 0  # its own files: replaced
    (out / "comparison.md").write_text("my notes\n")
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(
        f"error: --out {out}: {out / 'comparison.md'} was not written by bitscout compare (it does not "
        "open with `# Strategy comparison`), and the comparison would replace it with its own "
        "comparison.md; choose another folder (--out DIR), or move the file"
    )
    assert (out / "comparison.md").read_text() == "my notes\n"
