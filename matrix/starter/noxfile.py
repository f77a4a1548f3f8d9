# /// script
# dependencies = ["nox>=2025.2.9", "transformers-matrix==@VERSION@"]
# ///
"""Our compatibility matrix: `nox -s matrix` probes every env of ./matrix.toml and publishes
results/ beside it (`nox -l` lists the sessions; nox installs the tool from the block above)."""

from matrix.sessions import *  # noqa: F403  (registers matrix, probe, report, bisect)
