"""Synthetic, labelled sample corpus of short news-headline-like texts.

Everything in this module -- vocabularies, templates, place names and the
resulting headlines -- was written by the topic_pipeline project for use as the
product's sample data; no text is copied from any external source. The
headlines are *generated*, not collected, and generation is fully
deterministic: the same arguments always produce the same corpus, across runs,
processes and machines (only ``numpy.random.default_rng`` seeded with the
caller's integer seed is used; Python's salted ``hash()`` never is).

The corpus is deliberately not trivial to cluster, so that tuning the
UMAP/HDBSCAN hyperparameters of BERTopic makes a visible difference:

* topics have unequal sizes (the largest is about three times the smallest);
* each topic uses several headline templates with slots (actors, verbs,
  objects, places, numbers), so documents of one topic do not all look alike;
* related topics ("markets" and "energy", "football" and "tennis",
  "technology" and "space", ...) share some vocabulary: about one headline in
  six borrows an actor, object or event from a related topic;
* about 5-10% of the words are generic, topic-free newsroom filler
  ("Update:", "officials say", "what we know", ...).

Typical use::

    corpus = generate_demo_corpus(n_docs=1500, n_topics=10)
    seed = corpus.ground_truth(labelled_fraction=0.6)   # {"0": [ids...], ...}
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DemoCorpus", "generate_demo_corpus", "TOPIC_NAMES", "MAX_TOPICS"]


# ---------------------------------------------------------------------------
# Topic vocabularies (all invented for this project), in demo/vocabulary.json
#
# Template slots filled from the topic's own lists:
#   {A} actor  -- verbs right after it are written in the 3rd person singular
#                 and are put into the plural automatically for plural actors
#   {V} verb phrase fitting {O}    {O} object / theme    {X} event / cause
#   {Y} {Z} {W}  further topic-specific lists
# Shared slots: see ``_SHARED_SLOTS`` below ({P} place, {N} number, ...).
# ---------------------------------------------------------------------------


def _load_vocabulary() -> dict:
    with open(Path(__file__).parent / "demo" / "vocabulary.json", encoding="utf-8") as stream:
        return json.load(stream)


_VOCABULARY = _load_vocabulary()
_TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    name: {slot: tuple(values) for slot, values in slots.items()} for name, slots in _VOCABULARY["topics"].items()
}
# Public, fixed order in which topics are taken when n_topics < MAX_TOPICS.
# Related pairs come early so that even small corpora keep some overlap.
TOPIC_NAMES: tuple[str, ...] = tuple(_VOCABULARY["topic_order"])
MAX_TOPICS: int = len(TOPIC_NAMES)
# Related topics: a headline may borrow an actor / object / event from one.
_RELATED: dict[str, tuple[str, ...]] = {name: tuple(related) for name, related in _VOCABULARY["related"].items()}
# Relative topic sizes (in TOPIC_NAMES order); max/min ratio is 3 for the default ten topics.
_WEIGHTS: tuple[float, ...] = tuple(_VOCABULARY["weights"])

_BORROWABLE_SLOTS = ("A", "O", "X")

# Probabilities controlling overlap and noise.
_P_BORROW = 0.18  # headline borrows one A/O/X value from a related topic
_P_NOISE_PREFIX = 0.10  # "Update: ..."
_P_NOISE_SUFFIX = 0.20  # "..., officials say"
_P_NOISE_ADVERB = 0.12  # "Utility giant quietly raises ..."

_MIN_WORDS, _MAX_WORDS = 6, 16


# Shared vocabulary: places, dates and the generic, topic-free newsroom filler used as noise.
(
    _PLACES,
    _WEEKDAYS,
    _MONTHS,
    _ORDINALS,
    _CLUB_SUFFIXES,
    _EVENT_SUFFIXES,
    _SCORES,
    _ADJECTIVES,
    _REFORMS,
    _MOVES,
    _NOISE_PREFIXES,
    _NOISE_SUFFIXES,
    _NOISE_ADVERBS,
) = (
    tuple(_VOCABULARY[name])
    for name in (
        "places",
        "weekdays",
        "months",
        "ordinals",
        "club_suffixes",
        "event_suffixes",
        "scores",
        "adjectives",
        "reforms",
        "moves",
        "noise_prefixes",
        "noise_suffixes",
        "noise_adverbs",
    )
)


def _shared_slots() -> dict[str, Callable[[np.random.Generator], str]]:
    def pick(options: Sequence[str]) -> Callable[[np.random.Generator], str]:
        return lambda rng: _pick(rng, options)

    def money(rng: np.random.Generator) -> str:
        cur = _pick(rng, ("$", "£", "€"))
        if rng.random() < 0.75:
            return f"{cur}{int(rng.integers(2, 900))} million"
        return f"{cur}{int(rng.integers(1, 40))} billion"

    return {
        "P": pick(_PLACES),
        "D": pick(_WEEKDAYS),
        "MONTH": pick(_MONTHS),
        "ORD": pick(_ORDINALS),
        "NS": lambda rng: str(int(rng.integers(2, 13))),
        "N": lambda rng: str(int(rng.integers(10, 91))),
        "NL": lambda rng: f"{int(rng.integers(12, 500)) * 10:,}",
        "AGE": lambda rng: str(int(rng.integers(19, 79))),
        "PCT": lambda rng: f"{int(rng.integers(2, 40))}%",
        "PCTH": lambda rng: f"{int(rng.integers(41, 80))}%",
        "SPCT": lambda rng: f"{int(rng.integers(1, 50)) / 10:.1f}%",
        "M": money,
        "RENT": lambda rng: f"£{int(rng.integers(80, 300)) * 10:,}",
        "YEAR": lambda rng: str(int(rng.integers(2030, 2071))),
        "GOALS": _goals,
        "CLUB": lambda rng: f"{_pick(rng, _PLACES)} {_pick(rng, _CLUB_SUFFIXES)}",
        "EVENT": lambda rng: f"{_pick(rng, _PLACES)} {_pick(rng, _EVENT_SUFFIXES)}",
        "SCORE": pick(_SCORES),
        "UPDOWN": pick(("higher", "lower")),
        "MOVE": pick(_MOVES),
        "ADJ": pick(_ADJECTIVES),
        "REFORM": pick(_REFORMS),
    }


def _goals(rng: np.random.Generator) -> str:
    winner = int(rng.integers(1, 6))
    loser = int(rng.integers(0, winner))
    return f"{winner}-{loser}"


_SHARED_SLOTS = _shared_slots()
_SLOT_RE = re.compile(r"\{([A-Z]+)\}")
_PLURAL_MARK = "\x00"

assert set(TOPIC_NAMES) == set(_TOPICS) == set(_RELATED)
assert len(_WEIGHTS) == MAX_TOPICS


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoCorpus:
    """A generated, labelled corpus: parallel lists of ids, texts and true topics."""

    ids: list[int]
    texts: list[str]
    topics: list[str]

    def ground_truth(self, labelled_fraction: float = 0.6, seed: int = 7) -> dict[str, list[int]]:
        """A labelled sample in the project's seed format: {"<cluster id>": [text ids]}, cluster ids are
        strings "0".."k-1" (sorted by topic name), each list sorted ascending; a deterministic random subset
        of ids (labelled_fraction of the corpus, stratified per topic) -- documents outside it stay unlabelled."""
        fraction = float(labelled_fraction)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"labelled_fraction must be in (0, 1], got {labelled_fraction!r}")
        rng = np.random.default_rng(seed)
        by_topic: dict[str, list[int]] = {}
        for doc_id, topic in zip(self.ids, self.topics):
            by_topic.setdefault(topic, []).append(int(doc_id))
        result: dict[str, list[int]] = {}
        for cluster, topic in enumerate(sorted(by_topic)):
            members = sorted(by_topic[topic])
            k = min(len(members), max(1, int(round(fraction * len(members)))))
            chosen = rng.choice(len(members), size=k, replace=False)
            result[str(cluster)] = sorted(members[int(i)] for i in chosen)
        return result

    def topic_names(self) -> list[str]:
        """Distinct topic names, sorted; index i is cluster id ``str(i)`` of :meth:`ground_truth`."""
        return sorted(set(self.topics))

    def __len__(self) -> int:
        return len(self.ids)


def generate_demo_corpus(n_docs: int = 1500, n_topics: int = 10, seed: int = 20261122) -> DemoCorpus:
    """Generate a deterministic synthetic headline corpus.

    ``n_topics`` topics (3..MAX_TOPICS) are taken from :data:`TOPIC_NAMES` in
    order; topic sizes are unequal but every topic gets at least 5 documents,
    so ``n_docs`` must be at least ``5 * n_topics``. Documents are shuffled;
    ids are unique, increasing positive ints starting just above 1000, with
    small gaps.
    """
    n_docs = int(n_docs)
    n_topics = int(n_topics)
    if not 3 <= n_topics <= MAX_TOPICS:
        raise ValueError(f"n_topics must be between 3 and {MAX_TOPICS}, got {n_topics}")
    if n_docs < 5 * n_topics:
        raise ValueError(f"n_docs must be at least 5 * n_topics = {5 * n_topics}, got {n_docs}")

    rng = np.random.default_rng(seed)
    names = TOPIC_NAMES[:n_topics]
    sizes = _topic_sizes(n_docs, np.asarray(_WEIGHTS[:n_topics], dtype=float))

    topics: list[str] = []
    texts: list[str] = []
    seen: set[str] = set()
    for name, size in zip(names, sizes):
        for _ in range(size):
            text = _headline(rng, name)
            for _retry in range(8):  # keep texts (almost) unique
                if text.lower() not in seen:
                    break
                text = _headline(rng, name)
            seen.add(text.lower())
            topics.append(name)
            texts.append(text)

    order = rng.permutation(len(texts))
    texts = [texts[int(i)] for i in order]
    topics = [topics[int(i)] for i in order]
    steps = rng.integers(1, 4, size=len(texts))  # steps of 1..3 leave gaps
    ids = [1000 + int(v) for v in np.cumsum(steps)]
    return DemoCorpus(ids=ids, texts=texts, topics=topics)


# ---------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------


def _topic_sizes(n_docs: int, weights: np.ndarray) -> list[int]:
    """Split n_docs proportionally to weights (largest remainder), each >= 5."""
    n = len(weights)
    base = 5
    rest = n_docs - base * n
    raw = weights / weights.sum() * rest
    sizes = np.floor(raw).astype(int)
    remainder = rest - int(sizes.sum())
    order = sorted(range(n), key=lambda i: (-(raw[i] - sizes[i]), i))
    for i in order[:remainder]:
        sizes[i] += 1
    return [int(s) + base for s in sizes]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _is_plural(actor: str) -> bool:
    last = actor.split()[-1].lower()
    return last == "police" or (last.endswith("s") and not last.endswith(("ss", "us")))


def _pluralise_verb(word: str) -> str:
    """3rd person singular -> plural ("warns" -> "warn", "is" -> "are")."""
    special = {"is": "are", "has": "have", "was": "were"}
    if word in special:
        return special[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "zzes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _headline(rng: np.random.Generator, topic: str) -> str:
    vocab = _TOPICS[topic]
    template = _pick(rng, vocab["T"])
    slots = _SLOT_RE.findall(template)

    # Overlap: sometimes borrow one actor / object / event from a related topic.
    borrow_slot: str | None = None
    borrow_vocab = vocab
    candidates = [s for s in _BORROWABLE_SLOTS if s in slots]
    if candidates and rng.random() < _P_BORROW:
        borrow_slot = _pick(rng, candidates)
        borrow_vocab = _TOPICS[_pick(rng, _RELATED[topic])]

    def repl(match: re.Match[str]) -> str:
        slot = match.group(1)
        if slot == borrow_slot:
            value = _pick(rng, borrow_vocab[slot])
        elif slot in vocab:
            value = _pick(rng, vocab[slot])
        else:
            value = _SHARED_SLOTS[slot](rng)
        if slot == "A":
            if match.start() > 0 and len(value) > 1 and value[1].islower():
                value = value[0].lower() + value[1:]  # actor in mid-sentence
            if _is_plural(value):
                value += _PLURAL_MARK
        return value

    text = _SLOT_RE.sub(repl, template)
    # Subject-verb agreement for plural actors: the word right after the actor.
    text = re.sub(_PLURAL_MARK + r" (\S+)", lambda m: " " + _pluralise_verb(m.group(1)), text)
    text = text.replace(_PLURAL_MARK, "")
    text = _capitalise(text)

    # Generic noise (roughly 5-10% of all words).
    words = text.split()
    if template.startswith("{A} {V}") and rng.random() < _P_NOISE_ADVERB:
        # "Utility giant raises ..." -> "Utility giant quietly raises ..."
        verb_pos = _verb_position(words, vocab, borrow_vocab if borrow_slot == "A" else vocab)
        if verb_pos is not None:
            words.insert(verb_pos, _pick(rng, _NOISE_ADVERBS))
    text = " ".join(words)
    if rng.random() < _P_NOISE_SUFFIX:
        suffix = _SLOT_RE.sub(lambda m: _SHARED_SLOTS[m.group(1)](rng), _pick(rng, _NOISE_SUFFIXES))
        candidate = f"{text}, {suffix}"
        if len(candidate.split()) <= _MAX_WORDS:
            text = candidate
    if rng.random() < _P_NOISE_PREFIX and ":" not in text and len(text.split()) < _MAX_WORDS:
        text = f"{_pick(rng, _NOISE_PREFIXES)} {text}"

    if len(text.split()) < _MIN_WORDS:
        text = f"{text} {_pick(rng, ('in', 'near'))} {_pick(rng, _PLACES)}"
    return text


def _verb_position(
    words: list[str], vocab: dict[str, tuple[str, ...]], actor_vocab: dict[str, tuple[str, ...]]
) -> int | None:
    """Index of the first word after the leading actor, if the actor is found."""
    joined_lower = " ".join(words).lower()
    for actor in sorted(set(vocab["A"]) | set(actor_vocab["A"]), key=len, reverse=True):
        if joined_lower.startswith(actor.lower() + " "):
            return len(actor.split())
    return None


def _capitalise(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]
