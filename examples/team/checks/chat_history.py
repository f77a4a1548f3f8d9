"""Our assistant's conversation: three turns, each sent with the history of the ones before.

The service calls the model's own `chat(tokenizer, query, history)` when it has one (as
ChatGLM's remote code does), else renders the history with the tokenizer's chat template.
The replies are the outputs compared across envs; each turn's latency is a metric.
"""

TURNS = [
    "Hello, who are you?",
    "What did I just ask you?",
    "Summarise our conversation in one sentence.",
]


def probe(model, tokenizer, ctx):
    """Three turns with history; greedy, so the replies depend on the weights alone."""
    replies = []
    history = []
    for number, query in enumerate(TURNS, start=1):
        with ctx.timer(f"turn{number}"):
            if callable(getattr(model, "chat", None)):
                reply, history = model.chat(
                    tokenizer, query, history=history, do_sample=False, max_new_tokens=ctx.max_new_tokens
                )
            else:
                history = history + [{"role": "user", "content": query}]
                ids = tokenizer.apply_chat_template(history, add_generation_prompt=True, return_tensors="pt")
                ids = ids if ctx.torch.is_tensor(ids) else ids["input_ids"]
                output = model.generate(
                    ids.to(ctx.device), do_sample=False, max_new_tokens=ctx.max_new_tokens, min_new_tokens=1
                )
                reply = tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
                history = history + [{"role": "assistant", "content": reply}]
        replies.append(reply)
    return {"replies": replies, "turns": len(history)}
