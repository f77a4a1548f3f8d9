"""Our fix for remote code written for transformers 4.3x, kept in our own repository."""

import types


def restore_extract_past(model, tokenizer):
    """Give the model back `_extract_past_from_model_output` (gone in 4.49), returning the cache.

    Our chat model's `_update_model_kwargs_for_generation` calls it; from 4.42 the method
    returns a (name, cache) pair the old code cannot use, and from 4.49 it is gone.
    """

    def extract_past_from_model_output(self, outputs, standardize_cache_format=False):
        return outputs.past_key_values

    model._extract_past_from_model_output = types.MethodType(extract_past_from_model_output, model)


# When it runs: "model" (after load, the default) or "tokenizer" (as soon as the tokenizer loads).
restore_extract_past.stage = "model"
