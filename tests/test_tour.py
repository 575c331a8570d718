"""Static checks of the course notebooks 00_tour and 00_tour_solutions (nbval runs them).

1. Spelling: every markdown cell, with code spans, LaTeX math and URLs removed, is checked against
   pyspellchecker's English dictionary plus the project word list below; unknown words are printed.
2. Figures: every code cell that draws a plot must give it a title and label both axes (checked on the
   cell's syntax tree, without executing anything).
3. Structure: one literal-only parameters cell, the same keys in both notebooks, and each exercise of
   the tour (a question and an empty code cell) answered in the solutions.

Each check is also run on a small broken example, so that a check that cannot fail is caught.
"""
from __future__ import annotations

import ast
import json
import re

import pytest
from spellchecker import SpellChecker

from cdcml_lib.workflow.paths import repo_root

NOTEBOOKS = {name: repo_root() / "notebooks" / f"{name}.ipynb" for name in ("00_tour", "00_tour_solutions")}

# Terms of the field and of the kit that a general English dictionary lacks. Keep it short: a word
# belongs here only if it is spelt right and a reader of the course should meet it.
PROJECT_WORDS = {
    "valence", "arousal", "imemnet", "cdcml", "deam", "umap", "pca", "softmax", "mfcc", "mfccs",
    "chroma", "tonnetz", "mel", "resnet", "cnn", "adam", "sgd", "sigmoid", "embeddings", "embedding",
    "modality", "modalities", "minima", "optimiser", "nbval", "papermill", "kim", "zhao", "et", "al",
    "cvpr", "acm", "va", "mse", "sim", "cfr", "cfm", "sfr", "eq", "eqs", "dataset", "backbone",
    "hyperparameter", "iaps", "naps", "emotic", "librosa", "seeded", "lr", "dropout", "numpy",
    "pytorch", "cpu", "thumbnails",
}

# The kit writes British English; pyspellchecker's dictionary is American. A word also counts as
# known when one of these spelling rules turns it into a known American form.
_BRITISH_TO_AMERICAN = ((r"our(s?)$", r"or\1"), (r"ise([sd]?)$", r"ize\1"), (r"ising$", r"izing"),
                        (r"isation(s?)$", r"ization\1"), (r"tre(s?)$", r"ter\1"), (r"yse([sd]?)$", r"yze\1"),
                        (r"ogue(s?)$", r"og\1"), (r"elled$", r"eled"), (r"elling$", r"eling"))

_FENCED = re.compile(r"```.*?```", re.S)
_DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.S)
_INLINE_MATH = re.compile(r"\$[^$]+\$")
_CODE_SPAN = re.compile(r"`[^`]*`")
_URL = re.compile(r"\(?https?://\S+|www\.\S+")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_HTML_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")

_SPELL = SpellChecker(language="en")

# Calls that create an Axes or draw on one, and what a cell that makes them must also set.
_PLOT_CALLS = {"subplots", "figure", "add_subplot", "plot", "scatter", "hist", "imshow", "bar", "barh",
               "loglog", "semilogx", "semilogy", "contour", "contourf", "errorbar", "boxplot", "pcolormesh"}
_REQUIRED = {"title": {"set_title", "suptitle", "title"}, "xlabel": {"set_xlabel", "xlabel"},
             "ylabel": {"set_ylabel", "ylabel"}}


def load(name: str) -> dict:
    return json.loads(NOTEBOOKS[name].read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def prose(markdown: str) -> str:
    """The words a reader reads: markdown without code, math, URLs and markup."""
    for pattern in (_FENCED, _DISPLAY_MATH, _INLINE_MATH, _CODE_SPAN, _URL, _LINK_TARGET, _HTML_TAG):
        markdown = pattern.sub(" ", markdown)
    return markdown


def unknown_words(markdown: str) -> set[str]:
    """Words of ``markdown`` in neither the English dictionary nor PROJECT_WORDS (lower case)."""
    words = {w.lower() for w in _WORD.findall(prose(markdown))}
    words = {w[:-2] if w.endswith("'s") else w for w in words}
    candidates = {w for w in words if len(w) > 1 and w not in PROJECT_WORDS}
    return {w for w in _SPELL.unknown(candidates) if not _known_american(w)}


def _known_american(word: str) -> bool:
    """True if a British-to-American spelling rule turns ``word`` into a dictionary word."""
    for pattern, replacement in _BRITISH_TO_AMERICAN:
        american = re.sub(pattern, replacement, word)
        if american != word and not _SPELL.unknown([american]):
            return True
    return False


def missing_figure_labels(code: str) -> set[str]:
    """What a plotting cell lacks of a title, an x label and a y label (empty if it does not plot).

    A label counts when a call named like the setter is made (``ax.set_xlabel(...)``,
    ``plt.title(...)``) or when a keyword of that name is passed to any call (``ax.set(xlabel=...)``).
    """
    tree = ast.parse(code)
    called, keywords = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
            keywords.update(k.arg for k in node.keywords if k.arg)
    if not called & _PLOT_CALLS:
        return set()
    return {what for what, setters in _REQUIRED.items() if not (called & setters or what in keywords)}


def parameters_cell(nb: dict) -> dict:
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    values = {}
    for node in ast.parse(source(tagged[0])).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, \
            f"the parameters cell holds only 'name = literal' lines, not {ast.unparse(node)!r}"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # raises unless a literal
    return values


# ---------------------------------------------------------------------------------------------
# The checks on the notebooks
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_markdown_is_spelt_correctly(name):
    problems = {}
    for i, cell in enumerate(load(name)["cells"]):
        if cell["cell_type"] == "markdown":
            bad = unknown_words(source(cell))
            if bad:
                problems[i] = sorted(bad)
    for i, words in problems.items():
        print(f"{name} markdown cell {i}: unknown words {words}")
    assert not problems, (f"{name}: unknown words {problems} (cell index: words); fix the spelling, or add a "
                          "correctly spelt technical term to PROJECT_WORDS in tests/test_tour.py")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_figure_has_title_and_axis_labels(name):
    nb = load(name)
    problems = {i: sorted(missing_figure_labels(source(c))) for i, c in enumerate(nb["cells"])
                if c["cell_type"] == "code"}
    problems = {i: m for i, m in problems.items() if m}
    assert not problems, f"{name}: plotting cells without {problems} (cell index: missing); set them"
    n_plotting = sum(_plots(source(c)) for c in nb["cells"] if c["cell_type"] == "code")
    assert n_plotting >= 3, f"{name}: expected figures, found {n_plotting} plotting cells"


def _plots(code: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in _PLOT_CALLS
               for n in ast.walk(ast.parse(code)))


def test_parameters_cells_are_literals_with_the_same_keys():
    tour, solutions = (parameters_cell(load(name)) for name in NOTEBOOKS)
    assert set(tour) == set(solutions), f"keys differ: {sorted(set(tour) ^ set(solutions))}"
    # Small enough for a laptop: the tour's own promise (about two minutes on a CPU).
    assert tour["train_steps"] <= 300 and tour["image_size"] <= 64 and tour["n_images"] <= 200


def test_each_exercise_has_an_empty_cell_and_a_worked_solution():
    cells = load("00_tour")["cells"]
    exercises = []
    for i, cell in enumerate(cells):
        match = re.search(r"^\*\*Exercise (\d+)", source(cell), re.M)
        if cell["cell_type"] == "markdown" and match:
            exercises.append(int(match.group(1)))
            following = cells[i + 1]
            assert following["cell_type"] == "code" and not source(following).strip(), \
                f"00_tour: exercise {match.group(1)} must be followed by an empty code cell"
    assert len(exercises) >= 4 and exercises == list(range(1, len(exercises) + 1)), exercises
    solution_headings = {int(m) for c in load("00_tour_solutions")["cells"] if c["cell_type"] == "markdown"
                         for m in re.findall(r"^## Exercise (\d+)", source(c), re.M)}
    assert solution_headings == set(exercises), "each exercise of 00_tour needs a '## Exercise N' solution"


def test_notebooks_teach_from_the_library():
    """The tour calls the library's losses instead of re-implementing them (directly, or through
    its helpers in cdcml_lib/explore/tour.py, shared with the solutions)."""
    code = "\n".join(source(c) for c in load("00_tour")["cells"] if c["cell_type"] == "code")
    assert "tour.TinyStudy(" in code and "tour.fit_log_ratio(" in code
    code += (repo_root() / "cdcml_lib" / "explore" / "tour.py").read_text()
    for name in ("matching_score", "mean_label_distance", "candidate_pairs", "CrossModalFeatureRatioLoss",
                 "CrossModalFeatureMarginLoss", "SingleModalFeatureRatioLoss", "CDCMLLoss", "build_model",
                 "extract_features", "train_epoch"):
        assert name in code, f"00_tour does not call cdcml_lib's {name}"


# ---------------------------------------------------------------------------------------------
# The checks can fail
# ---------------------------------------------------------------------------------------------
def test_spelling_check_flags_a_misspelt_word_and_ignores_code_and_math():
    assert unknown_words("The valence plane, with a tpyo.") == {"tpyo"}
    assert unknown_words("The colours organise the neighbours' centres.") == set()  # British English
    assert unknown_words("The colurs orgnise.") == {"colurs", "orgnise"}
    assert unknown_words("Run `xqzt_loss()` on $\\lVert y \\rVert$, see https://exmple.org/qqq.") == set()


def test_the_solutions_import_the_tour_helpers_instead_of_copying_them():
    code = "\n".join(source(c) for c in load("00_tour_solutions")["cells"] if c["cell_type"] == "code")
    assert "tour.TinyStudy(" in code and "tour.fit_log_ratio(" in code
    for definition in ("def make_batches", "def train_tiny", "def embed_all", "def space_numbers"):
        assert definition not in code, definition


def test_figure_check_flags_a_missing_label():
    good = "fig, ax = plt.subplots()\nax.plot(x, y)\nax.set(title='t', xlabel='x', ylabel='y')"
    assert missing_figure_labels(good) == set()
    assert missing_figure_labels("fig, ax = plt.subplots()\nax.plot(x, y)\nax.set_xlabel('x')") == {"title", "ylabel"}
    assert missing_figure_labels("x = np.arange(3)") == set()
