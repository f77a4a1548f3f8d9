"""Mistake: not valid Python (a missing closing parenthesis); excluded from ruff by ../ruff.toml."""


def probe(model, tokenizer, ctx):
    """Count the model's parameters."""
    return {"parameters": sum(p.numel() for p in model.parameters()}
