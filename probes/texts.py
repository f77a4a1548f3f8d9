"""The fixed inputs every probe uses, so outputs can be compared across envs and runs."""

ROUND_TRIP = (
    "The quick brown fox jumps over the lazy dog.",
    "今天天气很好，我们去公园散步。",
)

EMBED_SENTENCES = (
    "def add(a, b): return a + b",
    "A function that returns the sum of two numbers.",
    "The weather is lovely today.",
)

PROMPT = "def fibonacci(n):"

# (text, text) pairs whose meanings match, and pairs that have nothing in common. A sound
# embedding model scores every related pair above every unrelated one.
RELATED_PAIRS = (
    ("How do I reverse a list in Python?", "Reversing a Python list"),
    ("The cat sits on the mat.", "A cat is sitting on a rug."),
    ("Open the file and read all lines.", "Read every line from a text file."),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
)
UNRELATED_PAIRS = (
    ("How do I reverse a list in Python?", "The stock market fell sharply today."),
    ("The cat sits on the mat.", "Read every line from a text file."),
    ("Open the file and read all lines.", "A cat is sitting on a rug."),
    ("Share prices dropped steeply this afternoon.", "Reversing a Python list"),
)
