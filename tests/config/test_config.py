"""Every config mistake gives one message naming file, table and key (hatch-style)."""

from __future__ import annotations

import pytest

from matrix.config import LATEST, ConfigError, load
from tests.helpers import GOOD_CONFIG, ROOT, nox_list

ENV = '[envs.a]\ntransformers = "4.40.*"\n'
MODEL = '[models.m]\nfixture = "qwen2-tiny"\ntask = "causal-lm"\n'

CASES = [
    pytest.param(
        ENV + MODEL + "[envs.b\n",
        "matrix.toml: not valid TOML: Expected ']' at the end of a table declaration (at line 6, column 8)",
        id="toml-syntax",
    ),
    pytest.param(
        "colour = 1\n" + ENV + MODEL,
        "matrix.toml: [top level] colour: unknown key (known keys: settings, envs, models)",
        id="unknown-top",
    ),
    pytest.param(
        ENV + 'transformerz = "4.40"\n' + MODEL,
        "matrix.toml: [envs.a] transformerz: unknown key "
        "(known keys: transformers, torch, python, pins, requirements, constraints)",
        id="unknown-env-key",
    ),
    pytest.param(
        '[envs.tf-4.40]\ntransformers = "4.40.*"\n' + MODEL,
        'matrix.toml: [envs.tf-4] 40: unknown key; a name with a dot must be quoted in TOML: write [envs."tf-4.40"]',
        id="unquoted-dotted-name",
    ),
    pytest.param(
        MODEL, "matrix.toml: [top level] envs: no [envs.<name>] table: the matrix needs at least one", id="no-envs"
    ),
    pytest.param(
        ENV, "matrix.toml: [top level] models: no [models.<name>] table: the matrix needs at least one", id="no-models"
    ),
    pytest.param(
        "envs = 3\n" + MODEL, "matrix.toml: [top level] envs: must be a table, not integer (3)", id="envs-not-table"
    ),
    pytest.param(
        '[envs.a]\ntorch = "==2.13.0"\n' + MODEL,
        "matrix.toml: [envs.a] transformers: missing: give a version spec such as '4.40.*', 'latest' or 'next'",
        id="missing-transformers",
    ),
    pytest.param(
        "[envs.a]\ntransformers = 4.4\n" + MODEL,
        "matrix.toml: [envs.a] transformers: must be a string, not float (4.4)",
        id="wrong-type",
    ),
    pytest.param(
        '[envs.a]\ntransformers = "4.x"\n' + MODEL,
        "matrix.toml: [envs.a] transformers: '4.x' is not a version spec "
        "(use 'latest', 'next', '4.40.*', '==4.40.2', '==5.0.0rc1', '>=4.40,<4.42', 'path:<wheel or folder>' "
        "or 'git+<url>')",
        id="bad-spec",
    ),
    pytest.param(
        ENV + 'torch = "latest"\n' + MODEL,
        "matrix.toml: [envs.a] torch: 'latest' is not a version spec (use '4.40.*', '==4.40.2' or '>=4.40,<4.42')",
        id="torch-latest",
    ),
    pytest.param(
        ENV + 'pins = ["numpy<2", "not a req!"]\n' + MODEL,
        "matrix.toml: [envs.a] pins: value #2 'not a req!' is not a requirement such as 'numpy<2'",
        id="bad-pin",
    ),
    pytest.param(
        ENV + MODEL + 'requires = ["einops>=0.7", "sentence piece"]\n',
        "matrix.toml: [models.m] requires: value #2 'sentence piece' is not a requirement such as 'numpy<2'",
        id="bad-requires",
    ),
    pytest.param(
        "[settings]\ndrift_blocks = 1\n" + ENV + MODEL,
        "matrix.toml: [settings] drift_blocks: must be a boolean, not integer (1)",
        id="drift-blocks-not-bool",
    ),
    pytest.param(
        ENV + "pins = [1]\n" + MODEL,
        "matrix.toml: [envs.a] pins: value #1 must be a string, not integer",
        id="pin-not-string",
    ),
    pytest.param(
        ENV + 'python = "three"\n' + MODEL,
        "matrix.toml: [envs.a] python: 'three' is not a Python version such as '3.11'",
        id="bad-python",
    ),
    pytest.param(
        '[envs."../up"]\ntransformers = "4.40.*"\n' + MODEL,
        "matrix.toml: [top level] envs.../up: unsafe name: use 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit",
        id="unsafe-name",
    ),
    pytest.param(
        ENV + '[envs.A]\ntransformers = "4.40.*"\n' + MODEL,
        "matrix.toml: [top level] envs.A: duplicate of [envs.a] (names differ only in case)",
        id="duplicate-case",
    ),
    pytest.param(
        ENV + ENV + MODEL,
        "matrix.toml: not valid TOML: Cannot declare ('envs', 'a') twice (at line 3, column 8)",
        id="duplicate-table",
    ),
    pytest.param(
        ENV + '[models.m]\ntask = "causal-lm"\n',
        "matrix.toml: [models.m]: give exactly one source key of hub, path, fixture, pypi",
        id="no-source",
    ),
    pytest.param(
        ENV + '[models.m]\nhub = "a/b"\nfixture = "qwen2-tiny"\ntask = "causal-lm"\n',
        "matrix.toml: [models.m]: give exactly one source key of hub, path, fixture, pypi (found: hub, fixture)",
        id="two-sources",
    ),
    pytest.param(
        ENV + '[models.m]\nfixture = "gpt9"\ntask = "causal-lm"\n',
        "matrix.toml: [models.m] fixture: unknown fixture 'gpt9' "
        "(known: codebert-tiny, qwen2-tiny, chatglm-legacy, chatglm-tokenizer-legacy)",
        id="unknown-fixture",
    ),
    pytest.param(
        ENV + '[models.m]\nhub = "not a hub id"\ntask = "causal-lm"\n',
        "matrix.toml: [models.m] hub: 'not a hub id' is not a hub id such as 'org/name'",
        id="bad-hub-id",
    ),
    pytest.param(
        ENV + '[models.m]\npath = "no/such/folder"\ntask = "causal-lm"\n',
        "matrix.toml: [models.m] path: folder 'no/such/folder' does not exist (relative paths start at {dir})",
        id="missing-path",
    ),
    pytest.param(
        ENV + '[models.m]\nfixture = "qwen2-tiny"\n',
        "matrix.toml: [models.m] task: missing: one of embedding, causal-lm",
        id="missing-task",
    ),
    pytest.param(
        ENV + '[models.m]\nfixture = "qwen2-tiny"\ntask = "chat"\n',
        "matrix.toml: [models.m] task: 'chat' is not one of embedding, causal-lm",
        id="bad-task",
    ),
    pytest.param(
        ENV + MODEL + 'shims = ["extract-past", "magic"]\n',
        "matrix.toml: [models.m] shims: value #2 'magic' is not a known shim "
        "(known: extract-past, pad-padding-side, num-hidden-layers; or 'file.py:function')",
        id="unknown-shim",
    ),
    pytest.param(
        ENV + MODEL + "timeout = 0\n",
        "matrix.toml: [models.m] timeout: must be greater than 0, not 0",
        id="zero-timeout",
    ),
    pytest.param(
        ENV + MODEL + 'trust_remote_code = "yes"\n',
        "matrix.toml: [models.m] trust_remote_code: must be a boolean, not string ('yes')",
        id="bool-as-string",
    ),
    pytest.param(
        ENV + MODEL + "max_new_tokens = true\n",
        "matrix.toml: [models.m] max_new_tokens: must be an integer or float, not boolean (True)",
        id="bool-as-number",
    ),
    pytest.param(
        ENV + MODEL + "similarity_check = true\n",
        "matrix.toml: [models.m] similarity_check: only applies to task = 'embedding'",
        id="contradiction",
    ),
    pytest.param(
        ENV + MODEL + 'subdir = "model"\n',
        "matrix.toml: [models.m] subdir: only applies to a model from a `pypi` package",
        id="subdir-without-pypi",
    ),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_each_mistake_has_its_own_located_message(write_config, text, message):
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == message.format(dir=path.parent)


def test_missing_file_names_the_variable_to_set(tmp_path):
    with pytest.raises(ConfigError, match="no such config file \\(set MATRIX_CONFIG to another one\\)"):
        load(tmp_path / "absent.toml")


def test_good_config_normalises_specs(write_config):
    config = load(write_config(GOOD_CONFIG))
    old, latest = config.envs
    assert old.transformers == "==4.40.*" and old.torch == "==2.13.0"
    assert latest.transformers == LATEST
    assert old.requirements() == ["transformers==4.40.*", "torch==2.13.0"]
    assert latest.requirements() == ["transformers", "torch"]
    assert config.models[0].source_kind == "fixture" and config.models[0].timeout == 300.0


def test_model_requires_are_installed_in_every_env(write_config):
    config = load(write_config(ENV + '[envs.b]\ntransformers = "latest"\n' + MODEL + 'requires = ["einops>=0.7"]\n'))
    assert config.models[0].requires == ("einops>=0.7",)
    assert [env.requirements()[-1] for env in config.envs] == ["einops>=0.7", "einops>=0.7"]


def test_shipped_default_config_is_valid():
    config = load(ROOT / "matrix.toml")
    assert [env.name for env in config.envs] == ["tf-4.40", "tf-4.50", "latest"]
    assert [m.name for m in config.models] == ["codebert-tiny", "qwen2-tiny", "chatglm-legacy", "minilm"]


def test_nox_reports_a_bad_config_in_one_line_with_exit_code_2(write_config):
    path = write_config('[envs.a]\ntransformers = "4.x"\n' + MODEL)
    done = nox_list(MATRIX_CONFIG=str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: matrix.toml: [envs.a] transformers: '4.x'")


def test_a_teams_known_breaks_table_is_checked_when_the_config_loads(write_config, tmp_path):
    (tmp_path / "breaks.toml").write_text('[[break]]\nid = "ours"\nintroduced_in = "4.x"\ncause = "c"\nmessage = "m"\n')
    with pytest.raises(ConfigError) as caught:
        load(write_config('[settings]\nknown_breaks = "breaks.toml"\n' + ENV + MODEL))
    assert str(caught.value).startswith(
        "matrix.toml: [settings] known_breaks: breaks.toml: break #1 (ours): `introduced_in` '4.x' is not a version"
    )
    with pytest.raises(ConfigError, match=r"known_breaks: file 'nope.toml' does not exist"):
        load(write_config('[settings]\nknown_breaks = "nope.toml"\n' + ENV + MODEL))
    (tmp_path / "breaks.toml").write_text('[[break]]\nid = "ours"\nintroduced_in = "4.1"\ncause = "c"\nmessage = "m"\n')
    config = load(write_config('[settings]\nknown_breaks = "breaks.toml"\n' + ENV + MODEL))
    assert config.settings.known_breaks == str(tmp_path / "breaks.toml")
