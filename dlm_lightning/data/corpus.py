"""The embedded default corpus: a seeded generator of prompt -> answer documents and its checker.

A document is ``[BOS] facts question [SEP]`` followed by an answer padded with ``[EOS]``::

    [BOS] he lives in new york . i like chess . where does he live ? [SEP]
    he lives in new york . i like chess . they visited san diego . [EOS] [EOS] ...

The answer's first sentence (a copy of the asked-about fact, multi-token city included) is fixed by
the prompt; the second sentence repeats the prompt's other fact with probability ``0.7``; the rest are
free sentences whose words are random but must obey subject-verb agreement and form valid
multi-token city names. Prompts are assigned to splits by a hash, so splits never share a prompt.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

PAD, MASK, BOS, SEP, EOS = "[PAD]", "[MASK]", "[BOS]", "[SEP]", "[EOS]"
SPECIAL_TOKENS = (PAD, MASK, BOS, SEP, EOS)

SINGULAR_SUBJECTS = ("he", "she", "tom", "anna")
PLURAL_SUBJECTS = ("i", "you", "we", "they")
SUBJECTS = SINGULAR_SUBJECTS + PLURAL_SUBJECTS
ACTIVITIES = ("tennis", "chess", "music", "football", "golf")
CITIES = (
    ("paris",),
    ("london",),
    ("tokyo",),
    ("rome",),
    ("new", "york"),
    ("new", "delhi"),
    ("san", "francisco"),
    ("san", "diego"),
    ("los", "angeles"),
)
# verb -> (form after a singular subject, form after a plural subject)
VERB_FORMS = {"like": ("likes", "like"), "live": ("lives", "live"), "do": ("does", "do")}
FUNCTION_WORDS = ("in", "visited", "where", ".", "?")


def _vocabulary() -> tuple[str, ...]:
    words: list[str] = list(SPECIAL_TOKENS)
    words += SUBJECTS
    for forms in VERB_FORMS.values():
        words += forms
    words += FUNCTION_WORDS + ACTIVITIES
    for city in CITIES:
        words += [w for w in city if w not in words]
    return tuple(words)


VOCABULARY = _vocabulary()
SPLITS = {"train": 0, "val": 1, "test": 2}
# A prompt belongs to split (hash % 10): 0 -> val, 1 -> test, otherwise train.
_SPLIT_OF_BUCKET = {0: "val", 1: "test"}
RULES = ("structure", "agreement", "entity", "copy", "padding")


def _verb(verb: str, subject: str) -> str:
    singular, plural = VERB_FORMS[verb]
    return singular if subject in SINGULAR_SUBJECTS else plural


@dataclass(frozen=True)
class Document:
    prompt: tuple[str, ...]  # [BOS] ... [SEP]
    answer: tuple[str, ...]  # words then [EOS] padding up to the answer length

    @property
    def words(self) -> tuple[str, ...]:
        return self.prompt + self.answer


@dataclass(frozen=True)
class CorpusGenerator:
    """Deterministic per (seed, split, index): ``document(split, i)`` never depends on call order. A
    frozen value, so equal settings are one cache key (the data's unigram counts)."""

    seed: int = 0
    answer_length: int = 40
    max_free_sentences: int = 5
    repeat_fact_probability: float = 0.7

    def __post_init__(self) -> None:
        needed = min_answer_length(self.max_free_sentences)
        if self.answer_length < needed:
            raise ValueError(f"answer_length={self.answer_length} < {needed}, the longest answer")

    def document(self, split: str, index: int) -> Document:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
        rng = random.Random(f"{self.seed}/{split}/{index}")
        while True:  # rejection: on average 1.25 draws for train, 10 for val/test
            prompt, facts = self._prompt(rng)
            if split_of_prompt(prompt) == split:
                break
        return Document(prompt, self._answer(rng, facts))

    def _prompt(self, rng: random.Random):
        subject, other = rng.sample(SUBJECTS, 2)
        city = rng.choice(CITIES)
        activity = rng.choice(ACTIVITIES)
        prompt = (
            (BOS, subject, _verb("live", subject), "in", *city, ".")
            + (other, _verb("like", other), activity, ".")
            + ("where", _verb("do", subject), subject, "live", "?", SEP)
        )
        return prompt, (subject, city, other, activity)

    def _answer(self, rng: random.Random, facts) -> tuple[str, ...]:
        subject, city, other, activity = facts
        words = [subject, _verb("live", subject), "in", *city, "."]
        if rng.random() < self.repeat_fact_probability:
            words += [other, _verb("like", other), activity, "."]
        for _ in range(rng.randint(0, self.max_free_sentences)):
            speaker = rng.choice(SUBJECTS)
            if rng.random() < 0.5:
                words += [speaker, _verb("like", speaker), rng.choice(ACTIVITIES), "."]
            else:
                words += [speaker, "visited", *rng.choice(CITIES), "."]
        return tuple(words) + (EOS,) * (self.answer_length - len(words))


def min_answer_length(max_free_sentences: int) -> int:
    """Longest possible answer plus one [EOS]: fact copy, repeated fact, free sentences."""
    return 6 + 4 + 5 * max_free_sentences + 1


def split_of_prompt(prompt: tuple[str, ...]) -> str:
    bucket = zlib.crc32(" ".join(prompt).encode()) % 10
    return _SPLIT_OF_BUCKET.get(bucket, "train")


# ----------------------------------------------------------------------------------------------
# Checker


@dataclass
class CheckResult:
    violations: list[tuple[str, str]] = field(default_factory=list)  # (rule, explanation)

    @property
    def valid(self) -> bool:
        return not self.violations

    @property
    def rules(self) -> set[str]:
        return {rule for rule, _ in self.violations}


class _Reject(Exception):
    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule


class _Reader:
    def __init__(self, words):
        self.words, self.pos = list(words), 0

    def peek(self) -> str | None:
        return self.words[self.pos] if self.pos < len(self.words) else None

    def take(self, allowed, what: str) -> str:
        word = self.peek()
        if word not in allowed:
            raise _Reject("structure", f"expected {what} at word {self.pos}, got {word!r}")
        self.pos += 1
        return word

    def city(self) -> tuple[str, ...]:
        first = self.peek()
        if (first,) in CITIES:
            self.pos += 1
            return (first,)
        starts = {c[0] for c in CITIES if len(c) == 2}
        ends = {c[1] for c in CITIES if len(c) == 2}
        if first not in starts and first not in ends:
            raise _Reject("structure", f"expected a city at word {self.pos}, got {first!r}")
        pair = tuple(self.words[self.pos : self.pos + 2])
        if pair in CITIES:
            self.pos += 2
            return pair
        raise _Reject("entity", f"{' '.join(pair)!r} at word {self.pos} is not a city")

    def agreeing_verb(self, verb: str, subject: str) -> str:
        word = self.take(VERB_FORMS[verb], f"a form of {verb!r}")
        if word != _verb(verb, subject):
            raise _Reject("agreement", f"{subject!r} takes {_verb(verb, subject)!r}, not {word!r}")
        return word


def _sentence(reader: _Reader) -> tuple:
    """One answer sentence; returns its meaning as a tuple."""
    subject = reader.take(SUBJECTS, "a subject")
    verb = reader.peek()
    if verb in VERB_FORMS["like"]:
        reader.agreeing_verb("like", subject)
        meaning = ("like", subject, reader.take(ACTIVITIES, "an activity"))
    elif verb in VERB_FORMS["live"]:
        reader.agreeing_verb("live", subject)
        reader.take(("in",), "'in'")
        meaning = ("live", subject, reader.city())
    else:
        reader.take(("visited",), "a verb")
        meaning = ("visited", subject, reader.city())
    reader.take((".",), "'.'")
    return meaning


def check(words) -> CheckResult:
    """Checks a whole document (prompt and answer, as words; leading [PAD] ignored)."""
    words = [w for w in words if w != PAD] if words and words[0] == PAD else list(words)
    result = CheckResult()
    try:
        sep = words.index(SEP)
    except ValueError:
        result.violations.append(("structure", "no [SEP] between prompt and answer"))
        return result
    try:
        facts = _parse_prompt(words[: sep + 1])
    except _Reject as reject:
        result.violations.append((reject.rule, f"prompt: {reject}"))
        return result
    answer = words[sep + 1 :]
    end = answer.index(EOS) if EOS in answer else len(answer)
    if end == len(answer):
        result.violations.append(("padding", "the answer has no [EOS]"))
    elif any(w != EOS for w in answer[end:]):
        result.violations.append(("padding", "a word follows [EOS]"))
    _check_answer(answer[:end], facts, result)
    return result


def _parse_prompt(words) -> dict:
    reader = _Reader(words)
    reader.take((BOS,), "[BOS]")
    subject = reader.take(SUBJECTS, "a subject")
    reader.agreeing_verb("live", subject)
    reader.take(("in",), "'in'")
    city = reader.city()
    reader.take((".",), "'.'")
    other = reader.take(SUBJECTS, "a subject")
    reader.agreeing_verb("like", other)
    activity = reader.take(ACTIVITIES, "an activity")
    reader.take((".",), "'.'")
    reader.take(("where",), "'where'")
    do_form = reader.take(VERB_FORMS["do"], "'do' or 'does'")
    asked = reader.take(SUBJECTS, "a subject")
    if do_form != _verb("do", asked):
        raise _Reject("agreement", f"{asked!r} takes {_verb('do', asked)!r}, not {do_form!r}")
    if asked != subject:
        raise _Reject("structure", f"the question must ask about {subject!r}, not {asked!r}")
    reader.take(("live",), "'live'")
    reader.take(("?",), "'?'")
    reader.take((SEP,), "[SEP]")
    return {"subject": subject, "city": city}


def _check_answer(words, facts, result: CheckResult) -> None:
    reader = _Reader(words)
    try:
        restated = _sentence(reader)
        expected = ("live", facts["subject"], facts["city"])
        if restated != expected:
            result.violations.append(
                ("copy", f"first sentence must restate {' '.join(_flatten(expected))!r}, "
                         f"got {' '.join(_flatten(restated))!r}")
            )
        while reader.peek() is not None:
            _sentence(reader)
    except _Reject as reject:
        result.violations.append((reject.rule, f"answer: {reject}"))


def _flatten(meaning) -> list[str]:
    out = []
    for part in meaning:
        out += list(part) if isinstance(part, tuple) else [part]
    return out
