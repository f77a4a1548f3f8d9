"""Mistake: probe() is a coroutine function; the runner calls it and does not await it."""


async def probe(model, tokenizer, ctx):
    """Count the model's parameters."""
    return {"parameters": sum(p.numel() for p in model.parameters())}
