"""The bad-config corpus: every file in tests/configs/bad/ holds one mistake and gets one located message.

Each `NN-short-name.toml` is a complete config with exactly one mistake; `NN-short-name.expected`
holds the one-line message `matrix.config.load` must raise for it (`{dir}` stands for the
corpus folder, which messages about paths name). On a mismatch the actual message is written to
`NN-short-name.actual` beside it; `MATRIX_UPDATE_GOLD=1` rewrites the .expected files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from matrix.config import ConfigError, load
from tests.helpers import check_gold, nox_list

BAD = Path(__file__).resolve().parents[1] / "configs" / "bad"
CASES = sorted(BAD.glob("*.toml"))
NAME = re.compile(r"^\d{2,3}-[a-z0-9]+(-[a-z0-9]+)*\.toml$")  # NN- up to 99, then NNN-

# A sample for the CLI check: nox reads the config when it loads the noxfile (about 1 s each).
CLI_SAMPLE = [
    "01-toml-syntax",
    "03-non-utf8",
    "16-env-not-a-table",
    "40-path-missing",
    "45-shim-combo-unknown",
    "59-cosine-above-one",
]


def expected_message(case: Path) -> str:
    text = case.with_suffix(".expected").read_text(encoding="utf-8")
    assert text.endswith("\n") and text.count("\n") == 1, f"{case.stem}.expected must hold exactly one line"
    return text.rstrip("\n").replace("{dir}", str(BAD))


def check_message(case: Path, actual: str) -> None:
    """Compare one message with its .expected file (`{dir}` for the corpus folder)."""
    actual_line = actual.replace(str(BAD), "{dir}") + "\n"
    check_gold(case.with_suffix(".expected"), actual_line, case.with_suffix(".actual"))


def corpus_params(names: list[str] | None = None) -> list:
    cases = CASES if names is None else [BAD / f"{name}.toml" for name in names]
    return [pytest.param(case, id=case.stem) for case in cases]


@pytest.mark.parametrize("case", corpus_params())
def test_each_bad_config_gives_its_gold_message(case):
    with pytest.raises(ConfigError) as caught:
        load(case)
    message = str(caught.value)
    assert "\n" not in message, f"{case.name}: the message spans several lines: {message!r}"
    check_message(case, message)


def test_corpus_is_large_and_well_formed():
    stems = {case.stem for case in CASES}
    assert len(stems) >= 30, f"only {len(stems)} corpus cases"
    bad_names = [case.name for case in CASES if not NAME.match(case.name)]
    assert not bad_names, f"corpus files not named NN-short-name.toml: {bad_names}"
    numbers = [int(case.name.partition("-")[0]) for case in CASES]
    assert len(numbers) == len(set(numbers)), "two corpus files share a number"
    assert stems == {gold.stem for gold in BAD.glob("*.expected")}, "every .toml needs a .expected and vice versa"
    assert set(CLI_SAMPLE) <= stems, "the CLI sample must name corpus cases"


def test_corpus_holds_the_files_text_editors_get_wrong():
    """The non-UTF-8 and the empty case are bytes on disk: check nothing re-encoded or filled them."""
    with pytest.raises(UnicodeDecodeError):
        (BAD / "03-non-utf8.toml").read_bytes().decode("utf-8")
    assert (BAD / "04-empty-file.toml").read_bytes() == b""


@pytest.mark.parametrize("case", corpus_params(CLI_SAMPLE))
def test_nox_reports_the_bad_config_in_one_line_with_exit_code_2(case):
    done = nox_list(MATRIX_CONFIG=str(case))
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {expected_message(case)}"
