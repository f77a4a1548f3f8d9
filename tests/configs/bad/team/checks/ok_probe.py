"""A probe script the corpus entries point at when the mistake is elsewhere."""


def probe(model, tokenizer, ctx):
    """Count the model's parameters."""
    return {"parameters": sum(p.numel() for p in model.parameters())}
