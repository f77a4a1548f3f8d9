"""Host-side library of the compatibility matrix: pure functions over the cell files.

The pipeline, one module each: config -> plan -> run -> collect -> aggregate -> recommend
-> render. Everything after `run` re-decides from the raw cell files, without a model.
"""

__version__ = "0.1.0"
