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

# The user turn of the chat probe (through the tokenizer's chat template or the model's chat()).
CHAT_QUERY = "Write a Python function that adds two numbers."

# A small labelled set of (text, text, related?) pairs, code and prose, that we wrote. A
# sound embedding model scores every related pair above every unrelated one; the host turns
# the scores into an accuracy (related when the cosine is above a threshold) for budgets.
LABELLED_PAIRS = (
    ("How do I reverse a list in Python?", "Reversing a Python list", True),
    ("The cat sits on the mat.", "A cat is sitting on a rug.", True),
    ("Open the file and read all lines.", "Read every line from a text file.", True),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon.", True),
    ("def add(a, b): return a + b", "A function that returns the sum of two numbers.", True),
    ("for line in open(path): print(line)", "Print each line of a file.", True),
    ("sorted(items, key=len)", "Sort a list of strings by their length.", True),
    ("SELECT name FROM users WHERE age > 30", "Query the names of users older than thirty.", True),
    ("How do I reverse a list in Python?", "The stock market fell sharply today.", False),
    ("The cat sits on the mat.", "Read every line from a text file.", False),
    ("Open the file and read all lines.", "A cat is sitting on a rug.", False),
    ("Share prices dropped steeply this afternoon.", "Reversing a Python list", False),
    ("def add(a, b): return a + b", "The weather is lovely today.", False),
    ("for line in open(path): print(line)", "She plays the violin in an orchestra.", False),
    ("sorted(items, key=len)", "The train to Paris leaves at noon.", False),
    ("SELECT name FROM users WHERE age > 30", "Bake the bread for forty minutes.", False),
)
