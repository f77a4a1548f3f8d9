"""Mistake: the file's name names the probe, and 'my-probe' is not a module-style name."""


def probe(model, tokenizer, ctx):
    """Count the model's parameters."""
    return {"parameters": sum(p.numel() for p in model.parameters())}
