"""The work a cell does with a loaded model: a forward pass, then its task.

Each records timings (first call and median of several) and a small fingerprint of the
outputs, so `matrix/` can later tell whether two envs computed the same thing. Each then
checks, outside the timed calls, that what the model returned is finite: NaN or inf fails
the phase (`NonFiniteOutputs`). Generated ids cannot be NaN (greedy decoding of NaN logits
just repeats token 0), so generation is checked by one more forward pass over the prompt
and the generated tokens (measured on CPU: 12-28 % of one generate call, against 4 timed
calls; `output_scores` would cost about nothing but changes the very call being timed).
"""

from __future__ import annotations

import time
from typing import Any

from probes import texts
from probes.observe import CellFailure, Observations


def forward(cell: Observations, model: Any, tokenizer: Any, torch: Any) -> None:
    """One plain forward pass on fixed inputs."""
    if cell.spec["task"] == "causal-lm":
        batch = tokenizer(texts.PROMPT, return_tensors="pt")
    else:
        batch = tokenizer(list(texts.EMBED_SENTENCES), padding=True, return_tensors="pt")
    batch = {key: value.to(cell.device) for key, value in batch.items()}
    outputs = cell.timed_calls("forward", lambda: model(**batch), torch)
    values = _first_tensor(outputs).float()
    cell.fingerprint["forward"] = {
        "shape": list(values.shape),
        "mean": round(values.mean().item(), 5),
        "abs_mean": round(values.abs().mean().item(), 5),
    }
    cell.check_finite(values, "logits" if cell.spec["task"] == "causal-lm" else "hidden-state values")


def _first_tensor(outputs: Any) -> Any:
    """The logits of a causal LM, the last hidden state of a bare model (tuple or ModelOutput)."""
    return outputs[0] if isinstance(outputs, tuple) else next(iter(outputs.values()))


def _check_generated(cell: Observations, model: Any, ids: Any, torch: Any) -> None:
    """One forward pass over prompt + generated tokens, its logits checked for NaN/inf.

    Its time is recorded apart (`<phase>_finite_check_s`). A model that cannot run this plain
    call (its generate worked, so the cell stands) is recorded as unchecked, not failed.
    """
    start = time.perf_counter()
    try:
        outputs = model(input_ids=ids, attention_mask=torch.ones_like(ids))
        logits = _first_tensor(outputs)
    except Exception as exc:  # noqa: BLE001 - our check must not fail a cell whose generate worked
        cell.fingerprint.setdefault("finite", {})[cell.phase] = None
        cell.facts[f"{cell.phase}_finite_check"] = f"not checked: {type(exc).__name__}: {exc}"[:300]
        return
    finally:
        cell.metrics[f"{cell.phase}_finite_check_s"] = round(time.perf_counter() - start, 6)
    cell.check_finite(logits, "logits of prompt + generated tokens")


def _greedy(cell: Observations, tokenizer: Any) -> dict[str, Any]:
    """Generation arguments that make the output a function of the weights alone."""
    new_tokens = int(cell.spec["max_new_tokens"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return {
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "do_sample": False,
        "use_cache": True,
        "pad_token_id": pad if pad is not None else 0,
    }


def generate(cell: Observations, model: Any, tokenizer: Any, torch: Any) -> None:
    """Greedy generation with the cache, a fixed number of new tokens."""
    batch = tokenizer(texts.PROMPT, return_tensors="pt")
    batch = {key: value.to(cell.device) for key, value in batch.items()}
    kwargs = _greedy(cell, tokenizer)
    output = cell.timed_calls("generate", lambda: model.generate(**batch, **kwargs), torch, repeats=3)
    tokens = output[0, batch["input_ids"].shape[1] :].tolist()
    cell.fingerprint["tokens"] = tokens
    cell.fingerprint["text"] = tokenizer.decode(tokens, skip_special_tokens=True)
    median = cell.metrics["generate_median_s"]
    cell.metrics["tokens_per_s"] = round(len(tokens) / median, 2) if median else 0.0
    _check_generated(cell, model, output[:1], torch)


def chat(cell: Observations, model: Any, tokenizer: Any, torch: Any) -> None:
    """One user turn the way the deployment sends it.

    `chat = "template"`: the tokenizer's own chat template renders the turn (Qwen2-Instruct
    and most chat models), then greedy generation. `chat = "method"`: the model's own
    `chat(tokenizer, query, history)` from its remote code (ChatGLM), which builds its
    prompt and calls generate itself - and breaks on its own when transformers moves.
    Only the template path is checked for non-finite logits: `chat()` returns text, not ids.
    """
    query = texts.CHAT_QUERY
    if cell.spec["chat"] == "method":
        if not callable(getattr(model, "chat", None)):
            raise CellFailure(f"chat = 'method' but {type(model).__name__} has no chat() method")
        new_tokens = int(cell.spec["max_new_tokens"])

        def call() -> Any:
            return model.chat(tokenizer, query, history=[], do_sample=False, max_new_tokens=new_tokens)

        reply = cell.timed_calls("chat", call, torch, repeats=3)
        response = reply[0] if isinstance(reply, tuple) else reply
        cell.fingerprint["chat"] = {"text": str(response)}
        return
    if not getattr(tokenizer, "chat_template", None):
        raise CellFailure(f"chat = 'template' but {type(tokenizer).__name__} has no chat template")
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": query}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = rendered if torch.is_tensor(rendered) else rendered["input_ids"]  # 5.x returns a BatchEncoding
    ids = ids.to(cell.device)
    mask = torch.ones_like(ids)
    kwargs = _greedy(cell, tokenizer)
    output = cell.timed_calls("chat", lambda: model.generate(input_ids=ids, attention_mask=mask, **kwargs), torch, 3)
    tokens = output[0, ids.shape[1] :].tolist()
    cell.facts["chat_prompt"] = tokenizer.decode(ids[0].tolist())
    cell.fingerprint["chat"] = {"tokens": tokens, "text": tokenizer.decode(tokens, skip_special_tokens=True)}
    _check_generated(cell, model, output[:1], torch)


def embed(cell: Observations, model: Any, tokenizer: Any, torch: Any) -> None:
    """Mean-pooled, normalised sentence vectors and their cosine similarities."""

    def encode(sentences: list[str]) -> Any:
        batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
        batch = {key: value.to(cell.device) for key, value in batch.items()}
        hidden = model(**batch)[0].float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    sentences = list(texts.EMBED_SENTENCES)
    vectors = cell.timed_calls("embed", lambda: encode(sentences), torch)
    cosine = (vectors @ vectors.T).tolist()
    cell.fingerprint["embedding"] = {
        "dim": int(vectors.shape[1]),
        "cosine": [[round(value, 4) for value in row] for row in cosine],
        # Full vectors (a few KB) so the host can measure drift between envs exactly.
        "vectors": [[round(value, 6) for value in row] for row in vectors.tolist()],
    }
    cell.check_finite(vectors, "embedding values")
    if cell.spec.get("similarity_check") or "min_similarity_accuracy" in (cell.spec.get("budgets") or {}):
        _similarity(cell, encode, must_separate=bool(cell.spec.get("similarity_check")))


def _similarity(cell: Observations, encode: Any, must_separate: bool) -> None:
    """Score the labelled pairs (the host turns them into an accuracy for budgets); with
    `must_separate`, every related pair must also score above every unrelated one."""
    pairs = texts.LABELLED_PAIRS
    left = encode([a for a, _, _ in pairs])
    right = encode([b for _, b, _ in pairs])
    for vectors in (left, right):
        cell.check_finite(vectors, "embedding values of the labelled pairs")
    scores = [round(value, 4) for value in (left * right).sum(dim=-1).tolist()]
    related = [score for score, (_, _, label) in zip(scores, pairs) if label]
    unrelated = [score for score, (_, _, label) in zip(scores, pairs) if not label]
    passed = min(related) > max(unrelated)
    cell.facts["similarity"] = {"scores": scores, "labels": [label for _, _, label in pairs], "passed": passed}
    if must_separate and not passed:
        raise CellFailure(
            f"similarity check: lowest related pair {min(related)} is not above highest unrelated pair {max(unrelated)}"
        )
