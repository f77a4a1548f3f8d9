"""Our code search: rank snippets of code and text for a query by embedding similarity.

The service mean-pools the last hidden state, normalises it and ranks by cosine; a release
that changes the ranking changes what our users see, so the ranking is the output checked
across envs, and recall@1 over the labelled queries is a metric with a budget.
"""

DOCUMENTS = [
    "def read_json(path):\n    with open(path) as f:\n        return json.load(f)",
    "SELECT name, email FROM users WHERE active = 1 ORDER BY name",
    "The quarterly report shows revenue grew by eight percent.",
    "for (int i = 0; i < n; i++) { sum += values[i]; }",
    "Our office is closed on public holidays and weekends.",
]
# (query, index of the document that answers it)
QUERIES = [
    ("load a JSON file from disk in Python", 0),
    ("SQL query for the names of active users", 1),
    ("how much did revenue grow this quarter", 2),
    ("sum the elements of an array in a loop", 3),
]


def probe(model, tokenizer, ctx):
    """Rank the documents for each query; recall@1 and the search latency are metrics."""
    torch = ctx.torch

    def encode(texts):
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(ctx.device)
        hidden = model(**batch)[0].float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    documents = encode(DOCUMENTS)
    queries = [query for query, _ in QUERIES]
    scores = ctx.time("search", lambda: encode(queries) @ documents.T)
    ranking = scores.argsort(dim=-1, descending=True).tolist()
    hits = sum(1 for (_, answer), ranked in zip(QUERIES, ranking, strict=True) if ranked[0] == answer)
    ctx.metric("recall_at_1", hits / len(QUERIES))
    return {"ranking": ranking, "scores": scores}
