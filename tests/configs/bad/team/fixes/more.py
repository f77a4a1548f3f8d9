"""A second shim file: its fix_rope is another shim called fix-rope."""


def fix_rope(model, tokenizer):
    """Reset the rope scaling another way."""
    model.config.rope_scaling = {"type": "linear", "factor": 1.0}
