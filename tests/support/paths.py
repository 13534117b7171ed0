"""Where things are, for tests wherever they sit in the tree: the checkout and the captures."""

from pathlib import Path

#: the repository's root (the checkout the tests run from)
REPO = Path(__file__).resolve().parents[2]
#: real captures and golden renders (tests/data/)
DATA = REPO / "tests" / "data"
