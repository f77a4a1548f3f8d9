"""A second, valid probe script whose file name (and so probe name) is also ok_probe."""


def probe(model, tokenizer, ctx):
    """The model's class name."""
    return {"class": type(model).__name__}
