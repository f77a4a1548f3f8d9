"""What a validated config holds: the envs to build, the models to probe, the settings.

Plain frozen dataclasses; the parsing that makes them lives beside them (`env_table`,
`model_table`, `settings_table`, `loader`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet

from matrix import team_code

TASKS = ("embedding", "causal-lm")
DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# How a chat model is probed after `generate`: its tokenizer's chat template, or its own chat() method.
CHAT_STYLES = ("template", "method")
SOURCE_KEYS = ("hub", "path", "fixture", "pypi")
# The transformers of an env: "latest" (the newest final release at run time), "next" (the
# newest pre-release newer than that), a version spec, "path:<wheel file or source folder>",
# or a VCS URL ("git+https://...@branch").
LATEST = "latest"
NEXT = "next"
PATH_PREFIX = "path:"
VCS_PREFIX = "git+"
BUDGET_KEYS = ("max_latency_s", "max_memory_mb", "min_similarity_accuracy")


@dataclass(frozen=True)
class EnvSpec:
    """One environment to build: a transformers spec plus optional pins and requirement files."""

    name: str
    transformers: str
    torch: str | None = None
    python: str | None = None
    pins: tuple[str, ...] = ()
    # What the config's models declare they need (`requires`): every env probes every model.
    model_requires: tuple[str, ...] = ()
    # The wheel file or source folder of a "path:" spec, absolute.
    transformers_path: str | None = None
    # Requirement and constraint files (absolute): the env's own, then those its models name.
    requirement_files: tuple[str, ...] = ()
    constraint_files: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """Where its transformers comes from: latest, next, spec (the index), path or vcs."""
        if self.transformers in (LATEST, NEXT):
            return self.transformers
        if self.transformers.startswith(PATH_PREFIX):
            return "path"
        if self.transformers.startswith(VCS_PREFIX):
            return "vcs"
        return "spec"

    @property
    def specifier(self) -> SpecifierSet | None:
        """The version spec of an env built from the index's releases by spec, else None."""
        return SpecifierSet(self.transformers) if self.kind == "spec" else None

    def transformers_requirement(self) -> str:
        """transformers as the installer is asked for it ("next" must be resolved first)."""
        if self.kind == "path":
            return f"transformers @ {Path(self.transformers_path or '').as_uri()}"
        if self.kind == "vcs":
            return f"transformers @ {self.transformers}"
        return "transformers" if self.kind in (LATEST, NEXT) else f"transformers{self.transformers}"

    def requirements(self) -> list[str]:
        """The requirement strings handed to the installer, transformers first."""
        reqs = [self.transformers_requirement(), f"torch{self.torch or ''}"]
        return reqs + list(self.pins) + [r for r in self.model_requires if r not in self.pins]

    def install_args(self) -> list[str]:
        """`requirements()` plus `-r`/`-c` per requirement and constraint file, for `uv pip install`."""
        args = self.requirements()
        for flag, files in (("-r", self.requirement_files), ("-c", self.constraint_files)):
            for file in files:
                args += [flag, file]
        return args

    def requested(self, base: Path) -> list[str]:
        """What was asked for, as a published file may show it: paths relative to `base` (the
        config's folder), a path build as the config names it."""
        reqs = self.requirements()
        if self.kind == "path":
            reqs[0] = f"transformers ({self.transformers})"
        for flag, files in (("-r", self.requirement_files), ("-c", self.constraint_files)):
            reqs += [f"{flag} {_relative(Path(file), base)}" for file in files]
        return reqs


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


@dataclass(frozen=True)
class ModelSpec:
    """One model to probe in every env, and how."""

    name: str
    source_kind: str
    source: str
    task: str
    subdir: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    shims: tuple[str, ...] = ()
    timeout: float = 300.0
    device: str = "cpu"
    # None: no dtype is passed to from_pretrained (what a plain call gets in each release).
    dtype: str | None = None
    max_new_tokens: int = 8
    chat: str | None = None
    similarity_check: bool = False
    memory_limit_mb: int | None = None
    optional: bool = False
    budgets: dict[str, float] = field(default_factory=dict)
    # Packages the model's own code imports (sentencepiece, einops, ...), installed in every env.
    requires: tuple[str, ...] = ()
    # Requirement and constraint files of the model (absolute), given to every env's installer.
    requirements: str | None = None
    constraints: str | None = None
    # The team's own code (matrix/team_code.py): probe scripts run after the built-in phases,
    # and the shims from its files that `shims` uses (by name).
    probes: tuple[team_code.TeamFile, ...] = ()
    team_shims: tuple[team_code.TeamFile, ...] = ()
    # Keywords for from_pretrained, as the deployment passes them.
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    # Budgets on probe scripts' metrics: "<probe>.<metric>" -> (">=" or "<=", limit).
    metric_budgets: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def unpinned_remote_code(self) -> bool:
        """Remote code from the hub without a pinned revision: whatever the repo's main
        branch holds at run time is executed (a local folder's code is the user's own)."""
        return self.trust_remote_code and self.source_kind == "hub" and not self.revision


@dataclass(frozen=True)
class Settings:
    """How the host judges cells: drift tolerances, budget rules, similarity threshold."""

    require_budgets: bool = False
    auto_bisect: bool = False
    # A cell whose outputs drift from the model's reference does not count as serving it.
    drift_blocks: bool = False
    drift_min_cosine: float = 0.9999
    drift_max_abs: float = 1e-4
    similarity_threshold: float = 0.5
    # The regression gate (matrix/gate.py): how many earlier runs on the same machine it looks
    # back on, the z-score a slowdown needs, and the smallest change it reports (all of: a
    # share of the history's mean, an absolute amount, a share of the model's budget).
    regression_lookback: int = 20
    regression_z: float = 5.0
    regression_min_effect_pct: float = 15.0
    regression_min_effect_s: float = 0.002
    regression_min_effect_mb: float = 8.0
    regression_budget_pct: float = 1.0
    # A folder of wheels to build every env from, with the package index switched off.
    wheelhouse: str | None = None
    # Search the release line for the newest single release that runs every model, confirmed by
    # a probe of each (docs/bisect-and-newest.md, "The newest release"), building at most this many envs.
    search_releases: bool = False
    max_release_builds: int = 20
    # How many bisect and release-search probes (env builds, runners) run side by side:
    # 0 is one per CPU, or one per GPU on a GPU box.
    jobs: int = 0
    # The team's own known-break table (same format as matrix/diagnosis/known_breaks.toml),
    # consulted before the built-in one; absolute (a relative path starts at the config's folder).
    known_breaks: str | None = None
    # The name published files give the machines (probes/public.py); without one they are
    # `host-<sha256[:8]>` of their hostnames, and no kernel string is published.
    machine_label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Config:
    """The whole validated config."""

    path: Path
    envs: tuple[EnvSpec, ...]
    models: tuple[ModelSpec, ...]
    settings: Settings = field(default_factory=Settings)

    def warnings(self) -> list[str]:
        """Things that are allowed but risky, said on every run (and marked in the table)."""
        return [
            f"{self.path.name}: [models.{model.name}] trust_remote_code = true without a pinned `revision`: "
            "the code that runs is whatever the repo holds today; pin revision to a commit"
            for model in self.models
            if model.unpinned_remote_code
        ]

    def env(self, name: str) -> EnvSpec:
        """The env called `name` (a KeyError names the known ones)."""
        for env in self.envs:
            if env.name == name:
                return env
        raise KeyError(f"no env {name!r} in {self.path.name}; known: {[e.name for e in self.envs]}")
