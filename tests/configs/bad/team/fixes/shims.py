"""Shims the corpus entries name: one good, the others each with one mistake."""


def fix_rope(model, tokenizer):
    """A good shim: two positional parameters, the default stage."""
    model.config.rope_scaling = None


def one_param(model):
    """Mistake: one parameter; the runner calls a shim with (model, tokenizer)."""
    model.config.rope_scaling = None


def bad_stage(model, tokenizer):
    """Mistake: its stage below is neither 'model' nor 'tokenizer'."""
    tokenizer.padding_side = "left"


bad_stage.stage = "load"


def extract_past(model, tokenizer):
    """Mistake: its name as a shim, extract-past, is a built-in shim's."""
    model.config.use_cache = True
