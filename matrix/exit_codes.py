"""The exit codes a script or a CI step can tell apart, the same from `python -m matrix`,
`transformers-matrix` and nox (the sessions pass them through; nox's own 1 is a failed
session). Ground level: the nox process imports it without the report's dependencies."""

OK = 0
USAGE = 2  # the tool could not do its job: a config error, no such run folder, no cells
PROBE_FAILURE = 3  # published, but some env could not be built: its cells say nothing
REGRESSION = 4  # published, and --fail-on-regression found a new failure or a slowdown

MEANING = {USAGE: "usage or config error", PROBE_FAILURE: "probe failure", REGRESSION: "regression"}
