"""Seeded toy preference data reproducing the paper's two toy setups (METHOD.md, last section).

- ``length_biased``: the chosen answer is on the prompt's topic and the rejected one is about
  another topic (the true, prompt-related preference), but in train/validation the chosen is
  also the longer one 90% of the time (a response-only shortcut); the test split reverses it.
- ``adversarial``: the same short and long answer appear under "Answer in one sentence" and
  "Give a detailed, thorough answer" prompts with opposite preferences, so no response-only
  rule can fit both.

Every row carries the injected truth (word lengths, length gap, relevance gap), and
``length_relevance_reward`` is a toy r(x, y) = a * n_words(y) + b * relevance(x, y) whose
prompt-free part is exactly a * length_diff, so scoring code can be checked against it.

Responses are drawn from a small bank of unique texts built once per call, so generating
100k pairs is index arithmetic in numpy plus one gather per column in polars.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl

SETUPS = ("length_biased", "adversarial")
SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
MAX_SENTENCES = 8  # response lengths run from 1 to MAX_SENTENCES topical sentences
LONG_MIN_SENTENCES = 4  # the adversarial "detailed" answer has at least this many
VERBOSE_FROM = 4  # responses this long also get a chatty opener and closer
VARIANTS = 24  # distinct responses per (topic, sentence count >= 2)
ONE_SENTENCE_PREFIX = "Answer in one sentence: "
DETAILED_PREFIX = "Give a detailed, thorough answer: "

Texts = Sequence[str] | pl.Series


# ----------------------------------------------------------------------------- generation


def generate_demo(
    n_length_biased: int = 3000,
    n_adversarial: int = 600,
    seed: int = 0,
    train_long_rate: float = 0.9,
    test_long_rate: float = 0.1,
) -> pl.DataFrame:
    """Both toy setups in TRL's explicit format plus the injected truth, rows shuffled.

    ``n_adversarial`` counts rows and must be even: each response pair yields two rows.
    ``train_long_rate`` is P(chosen longer) in train/validation, ``test_long_rate`` in test.
    """
    for name, rate in (("train_long_rate", train_long_rate), ("test_long_rate", test_long_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    if n_length_biased < 0 or n_adversarial < 0:
        raise ValueError("row counts must be >= 0")
    if n_adversarial % 2:
        raise ValueError(
            f"n_adversarial counts rows (two per response pair), got odd {n_adversarial}"
        )
    rng = np.random.default_rng(seed)
    bank = _Bank.build(rng)
    rates = {"train": train_long_rate, "validation": train_long_rate, "test": test_long_rate}
    lb = _length_biased(rng, bank, n_length_biased, rates)
    adv = _adversarial(rng, bank, n_adversarial // 2)
    # Rows stay integer codes until this point, so shuffling costs one gather per column.
    order = rng.permutation(n_length_biased + n_adversarial)
    p, c, r, split_codes = (
        np.concatenate([lb[k], adv[k]])[order] for k in ("p", "c", "r", "split")
    )
    prompts, prompt_topic = all_prompts()
    len_c, len_r = bank.words[c], bank.words[r]
    return pl.DataFrame(
        {
            "prompt": prompts.gather(p),
            "chosen": bank.texts.gather(c),
            "rejected": bank.texts.gather(r),
            "label": np.ones(p.size),
            "split": pl.Series(SPLITS, dtype=pl.String).gather(split_codes),
            "setup": pl.Series(SETUPS, dtype=pl.String).gather(
                (p >= lb_prompts().len()).astype(np.int64)
            ),
            "topic": pl.Series([tp.name for tp in TOPICS], dtype=pl.String).gather(prompt_topic[p]),
            "len_chosen": len_c,
            "len_rejected": len_r,
            "length_diff": len_c - len_r,
            # By construction only the chosen fits the prompt's topic and format.
            "relevance_gap": np.ones(p.size),
            "chosen_longer": len_c > len_r,
            "bias_breaking": len_c < len_r,
        }
    )


def write_demo(path: str | Path, **kwargs: object) -> Path:
    """Write `generate_demo(**kwargs)` as JSONL (one pair per line) for the real ingest path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_demo(**kwargs).write_ndjson(path)  # type: ignore[arg-type]
    return path


@cache
def lb_prompts() -> pl.Series:
    """Length-biased prompts, topic-major: equal consecutive blocks, one block per topic."""
    return pl.Series(
        [tpl.format(s=s) for tp in TOPICS for s in tp.subjects for tpl in PROMPT_TEMPLATES],
        dtype=pl.String,
    )


@cache
def adv_questions() -> pl.Series:
    """Adversarial questions before the format prefix, topic-major like `lb_prompts`."""
    return pl.Series(
        [tpl.format(s=s) for tp in TOPICS for s in tp.subjects for tpl in QUESTION_TEMPLATES],
        dtype=pl.String,
    )


@cache
def all_prompts() -> tuple[pl.Series, np.ndarray]:
    """Every demo prompt and its topic index: length-biased ones, then per adversarial
    question its one-sentence and its detailed variant (rows 2q and 2q + 1 after the former).
    """
    lb, questions = lb_prompts(), adv_questions()
    n_topics = len(TOPICS)
    q2 = questions.gather(np.repeat(np.arange(questions.len()), 2))
    prefix = pl.Series(
        np.tile([ONE_SENTENCE_PREFIX, DETAILED_PREFIX], questions.len()), dtype=pl.String
    )
    topic = np.concatenate(
        [
            np.arange(lb.len()) // (lb.len() // n_topics),
            np.arange(2 * questions.len()) // (2 * questions.len() // n_topics),
        ]
    )
    return pl.concat([lb, prefix + q2]), topic


class _Bank:
    """Unique response texts indexed by (topic, sentence count): one gather builds any column."""

    def __init__(self, texts: list[str], offsets: np.ndarray, counts: np.ndarray) -> None:
        self.texts = pl.Series("text", texts, dtype=pl.String)
        self.words = n_words(self.texts)  # (B,)
        self.offsets = offsets  # (T, MAX_SENTENCES): first bank index of (topic, k)
        self.counts = counts  # (T, MAX_SENTENCES): number of variants of (topic, k)

    @classmethod
    def build(cls, rng: np.random.Generator) -> _Bank:
        # The bank has a fixed size (~2.7k texts) whatever the number of pairs: a loop is fine.
        texts: list[str] = []
        n_topics = len(TOPICS)
        offsets = np.zeros((n_topics, MAX_SENTENCES), dtype=np.int64)
        counts = np.zeros((n_topics, MAX_SENTENCES), dtype=np.int64)
        for t, topic in enumerate(TOPICS):
            sentences = topic.sentences
            for k in range(1, MAX_SENTENCES + 1):
                if k == 1:
                    variants = list(sentences)
                else:
                    seen: dict[str, None] = {}
                    for _ in range(VARIANTS * 4):
                        picked = [sentences[i] for i in rng.permutation(len(sentences))[:k]]
                        fillers = rng.integers(0, len(FILLERS), size=k - 1)
                        seen.setdefault(_compose(picked, [FILLERS[f] for f in fillers]))
                        if len(seen) == VARIANTS:
                            break
                    variants = list(seen)
                offsets[t, k - 1] = len(texts)
                counts[t, k - 1] = len(variants)
                texts.extend(variants)
        return cls(texts, offsets, counts)

    def draw(self, rng: np.random.Generator, topic: np.ndarray, k: np.ndarray) -> np.ndarray:
        """A uniformly drawn bank index per row for the given topic and sentence count (1-based)."""
        return self.offsets[topic, k - 1] + rng.integers(0, self.counts[topic, k - 1])


def _compose(sentences: list[str], fillers: list[str]) -> str:
    """Verbose style: a connective before every extra sentence, chatty framing when long."""
    rest = [f"{f} {s[0].lower()}{s[1:]}" for f, s in zip(fillers, sentences[1:], strict=True)]
    body = [sentences[0], *rest]
    if len(sentences) >= VERBOSE_FROM:
        body = [OPENER, *body, CLOSER]
    return " ".join(body)


def _split_sizes(n: int) -> dict[str, int]:
    n_train = int(n * SPLIT_FRACTIONS[0] + 0.5)
    n_val = int(n * SPLIT_FRACTIONS[1] + 0.5)
    return {"train": n_train, "validation": n_val, "test": n - n_train - n_val}


Draw = Callable[[int], tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]


def _draw_distinct(
    draw: Draw, n: int, seen: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Vectorized rounds of ``draw(m) -> (columns, keys, ok)`` until ``n`` rows with new keys.

    Rows are rejected when ``ok`` is False or their key was already drawn (in ``seen`` or
    earlier in the round), so no (prompt, chosen, rejected) triple appears twice.
    """
    parts: list[dict[str, np.ndarray]] = []
    need = n
    for _ in range(100):
        cols, keys, ok = draw(need + need // 8 + 16)  # oversample: some rows get rejected
        first = np.zeros(keys.size, dtype=bool)
        first[np.unique(keys, return_index=True)[1]] = True
        take = np.flatnonzero(ok & first & ~np.isin(keys, seen))[:need]
        seen = np.concatenate([seen, keys[take]])
        parts.append({name: col[take] for name, col in cols.items()})
        need -= take.size
        if need == 0:
            return {name: np.concatenate([p[name] for p in parts]) for name in cols}, seen
    raise RuntimeError(f"could not draw {n} distinct pairs; the text bank is too small")


def _length_biased(
    rng: np.random.Generator, bank: _Bank, n: int, rates: dict[str, float]
) -> dict[str, np.ndarray]:
    """Row codes (prompt index, chosen/rejected bank index, split code) of the length-biased setup."""
    n_topics, n_prompts = len(TOPICS), lb_prompts().len()
    prompt_topic = all_prompts()[1]
    n_bank = bank.texts.len()

    def draw(m: int, rate: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        p = rng.integers(0, n_prompts, size=m)
        t_c = prompt_topic[p]
        t_r = (t_c + rng.integers(1, n_topics, size=m)) % n_topics  # any other topic
        k_a = rng.integers(1, MAX_SENTENCES + 1, size=m)
        k_b = rng.integers(1, MAX_SENTENCES, size=m)
        k_b += k_b >= k_a  # distinct sentence counts
        chosen_longer = rng.random(m) < rate
        k_long, k_short = np.maximum(k_a, k_b), np.minimum(k_a, k_b)
        c = bank.draw(rng, t_c, np.where(chosen_longer, k_long, k_short))
        r = bank.draw(rng, t_r, np.where(chosen_longer, k_short, k_long))
        # Sentence lengths vary, so also enforce the intended order on word counts.
        w_c, w_r = bank.words[c], bank.words[r]
        ok = np.where(chosen_longer, w_c > w_r, w_c < w_r)
        return {"p": p, "c": c, "r": r}, (p * n_bank + c) * n_bank + r, ok

    seen = np.zeros(0, dtype=np.int64)
    parts = []
    for split, size in _split_sizes(n).items():
        cols, seen = _draw_distinct(lambda m, s=split: draw(m, rates[s]), size, seen)
        parts.append({**cols, "split": np.full(size, SPLITS.index(split))})
    return {k: np.concatenate([part[k] for part in parts]) for k in ("p", "c", "r", "split")}


def _adversarial(rng: np.random.Generator, bank: _Bank, n_pairs: int) -> dict[str, np.ndarray]:
    """Row codes of the adversarial setup: two rows (opposite preferences) per response pair."""
    n_questions = adv_questions().len()
    prompt_topic = all_prompts()[1]
    n_lb = lb_prompts().len()
    n_bank = bank.texts.len()

    def draw(m: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        q = rng.integers(0, n_questions, size=m)
        t = prompt_topic[n_lb + 2 * q]
        short = bank.draw(rng, t, np.ones(m, dtype=np.int64))
        long = bank.draw(rng, t, rng.integers(LONG_MIN_SENTENCES, MAX_SENTENCES + 1, size=m))
        keys = (q * n_bank + short) * n_bank + long
        return {"q": q, "s": short, "l": long}, keys, np.ones(m, dtype=bool)

    cols, _ = _draw_distinct(draw, n_pairs, np.zeros(0, dtype=np.int64))
    q, short, long = cols["q"], cols["s"], cols["l"]
    split_codes = np.repeat(np.arange(len(SPLITS)), list(_split_sizes(n_pairs).values()))
    split_codes = split_codes[rng.permutation(n_pairs)]  # one split per response pair
    # (P, 2) -> (2P,): the one-sentence prompt prefers the short answer, the detailed one the long.
    p = n_lb + np.stack([2 * q, 2 * q + 1], axis=1).reshape(-1)
    c = np.stack([short, long], axis=1).reshape(-1)
    r = np.stack([long, short], axis=1).reshape(-1)
    return {"p": p, "c": c, "r": r, "split": np.repeat(split_codes, 2)}


# ----------------------------------------------------------------------------- toy reward


def _series(texts: Texts) -> pl.Series:
    return texts if isinstance(texts, pl.Series) else pl.Series(list(texts), dtype=pl.String)


def n_words(texts: Texts) -> np.ndarray:
    """Whitespace-separated word counts, (N,) int64."""
    return _series(texts).str.count_matches(r"\S+").cast(pl.Int64).to_numpy()


def n_sentences(texts: Texts) -> np.ndarray:
    """Sentence counts (terminal punctuation followed by a space or the end), (N,) int64."""
    return _series(texts).str.count_matches(r"[.!?](?:\s|$)").cast(pl.Int64).to_numpy()


@cache
def _topic_patterns() -> tuple[str, ...]:
    return tuple(r"(?i)\b(?:" + "|".join(map(re.escape, tp.keywords)) + r")\b" for tp in TOPICS)


def infer_topic(texts: Texts) -> np.ndarray:
    """Index into TOPICS of the topic with most keyword hits, -1 when none; (N,) int64."""
    s = _series(texts)
    hits = np.stack(
        [s.str.count_matches(pat).to_numpy() for pat in _topic_patterns()], axis=1
    )  # (N, T)
    return np.where(hits.max(axis=1) > 0, hits.argmax(axis=1), -1)


def relevance(prompts: Texts, responses: Texts) -> np.ndarray:
    """1.0 when the response is on the prompt's topic and obeys its requested format, else 0.0.

    Format: a "one sentence" prompt needs exactly one sentence, a "detailed" prompt at least two;
    other prompts ask nothing about length.
    """
    p, y = _series(prompts), _series(responses)
    t_p, t_y = infer_topic(p), infer_topic(y)
    k = n_sentences(y)
    one = p.str.starts_with(ONE_SENTENCE_PREFIX).to_numpy()
    detailed = p.str.starts_with(DETAILED_PREFIX).to_numpy()
    format_ok = np.where(one, k == 1, np.where(detailed, k >= 2, True))
    return ((t_p >= 0) & (t_p == t_y) & format_ok).astype(np.float64)


def length_relevance_reward(
    prompts: Texts, responses: Texts, a: float = 0.02, b: float = 1.0
) -> np.ndarray:
    """Toy r(x, y) = a * n_words(y) + b * relevance(x, y), (N,) float64.

    Its prompt-free part r2(y) = a * n_words(y), so for a demo pair free = a * length_diff and,
    under the pair's own prompt, related = b * relevance_gap.
    """
    return a * n_words(responses) + b * relevance(prompts, responses)


# ----------------------------------------------------------------------------- text bank


class Topic:
    """One topic: the keywords that identify it, prompt subjects, and on-topic sentences."""

    def __init__(
        self, name: str, keywords: str, subjects: tuple[str, ...], sentences: tuple[str, ...]
    ):
        self.name = name
        self.keywords = tuple(keywords.split())
        self.subjects = subjects
        self.sentences = sentences


PROMPT_TEMPLATES = (
    "Can you tell me about {s}?",
    "Explain {s} in simple terms.",
    "What should a beginner know about {s}?",
    "I am curious about {s}. What can you share?",
    "Give me an overview of {s}.",
    "What are the key facts about {s}?",
    "Help me understand {s}.",
    "Could you describe {s} for me?",
)
QUESTION_TEMPLATES = (
    "What should I know about {s}?",
    "What is worth knowing about {s}?",
    "How would you sum up {s}?",
    "What are the basics of {s}?",
)
FILLERS = (
    "Furthermore, it is worth noting that",
    "In addition, many people find that",
    "It is also important to remember that",
    "On top of that, experts often point out that",
    "Another point that deserves attention is that",
    "As a further consideration, keep in mind that",
    "Beyond that, it may help to know that",
)
OPENER = "That is a great question, and there is quite a lot to say about it."
CLOSER = "I hope this detailed overview gives you a clearer picture of the whole subject."

TOPICS: tuple[Topic, ...] = (
    Topic(
        "cooking",
        "cook cooks cooking cooked recipe recipes pasta bread breads dough oven ovens kitchen "
        "kitchens bake baking baked sauce sauces ingredient ingredients chef chefs simmer "
        "simmering flour garlic skillet knife knives",
        (
            "cooking fresh pasta at home",
            "baking sourdough bread",
            "making a simple pasta sauce",
            "organizing a home kitchen",
            "following a recipe as a beginner cook",
        ),
        (
            "Fresh pasta needs only flour, eggs, and a little patience to come together.",
            "A hot oven and a heavy baking tray give bread a crisp, golden finish.",
            "Most sauces taste better when the garlic is cooked gently over low heat.",
            "Reading the whole recipe before you start saves a lot of stress in the kitchen.",
            "Sourdough bread relies on wild yeast, so the dough rises more slowly than usual.",
            "A sharp chef's knife is safer than a dull one because it slips less.",
            "Salting the pasta water generously is the easiest way to season the noodles.",
            "Letting the dough rest allows the gluten to relax, which makes it easier to roll.",
            "Simmering a tomato sauce slowly deepens its flavor and thickens its texture.",
            "Good cooks taste their food as they go and adjust the seasoning at the end.",
            "Preheating the oven fully is one of the simplest ways to get even baking.",
            "Measuring flour by weight instead of by cup makes baking results far more consistent.",
        ),
    ),
    Topic(
        "astronomy",
        "planet planets planetary star stars telescope telescopes galaxy galaxies orbit orbits "
        "orbiting moon moons comet comets astronomer astronomers astronomy nebula nebulae solar "
        "eclipse eclipses asteroid asteroids constellation constellations",
        (
            "the planets of the solar system",
            "observing stars with a telescope",
            "how galaxies form",
            "comets and their orbits",
            "solar eclipses",
        ),
        (
            "The planets of our solar system all orbit the sun in roughly the same plane.",
            "A small telescope is enough to reveal the rings of a distant planet.",
            "Most stars we see at night are hundreds of light years away from us.",
            "Galaxies contain billions of stars held together by their shared gravity.",
            "A comet grows a glowing tail as its orbit carries it closer to the sun.",
            "During a total solar eclipse, the moon briefly blocks the entire face of the sun.",
            "Astronomers measure the distance to nearby stars by watching them shift over a year.",
            "The moon always shows the same side to us because its rotation is locked to its orbit.",
            "A nebula is a vast region of gas and dust where new stars are born.",
            "Dark skies far from city lights make faint galaxies much easier to observe.",
            "Asteroids are small leftovers from the era when the planets were still forming.",
            "Many constellations were named long ago by observers who saw patterns among the stars.",
        ),
    ),
    Topic(
        "gardening",
        "garden gardens gardening gardener gardeners soil soils seed seeds seedling seedlings "
        "compost composting plant plants planting planted weed weeds weeding prune pruning "
        "mulch mulching shrub shrubs vegetable vegetables",
        (
            "growing vegetables in a backyard garden",
            "improving garden soil",
            "starting plants from seed",
            "making compost at home",
            "pruning fruit trees",
        ),
        (
            "Most vegetables need at least six hours of direct sun to grow well in a garden.",
            "Adding compost every spring keeps the soil loose, rich, and full of life.",
            "Seedlings started indoors should be hardened off slowly before they are planted outside.",
            "A thick layer of mulch keeps weeds down and helps the soil hold moisture.",
            "Pruning in late winter encourages fruit trees to put out strong new growth.",
            "Watering deeply but less often teaches plants to grow deeper roots.",
            "A compost pile needs a balance of green scraps and dry brown material to break down.",
            "Many gardeners rotate their crops each year to keep soil diseases from building up.",
            "Small seeds should be sown shallowly, since they have little energy to reach the surface.",
            "Pulling weeds after a good soaking is much easier because the roots slide out.",
            "Raised garden beds warm up faster in spring and drain better after heavy watering.",
            "Companion planting, such as growing herbs beside vegetables, can keep some pests away.",
        ),
    ),
    Topic(
        "music",
        "music musical musician musicians guitar guitars guitarist piano pianos pianist chord "
        "chords melody melodies rhythm rhythms song songs songwriter songwriting instrument "
        "instruments tempo metronome lyrics",
        (
            "learning to play the guitar",
            "practicing the piano",
            "writing a catchy song",
            "understanding chords",
            "reading sheet music",
        ),
        (
            "Beginners on the guitar usually start with a handful of open chords.",
            "Practicing the piano slowly with a metronome builds accuracy before speed.",
            "A catchy song often repeats a simple melody that listeners can hum after one hearing.",
            "A chord is simply three or more notes played together at the same time.",
            "Reading sheet music becomes easier once you learn to recognize common rhythms by sight.",
            "Short daily practice sessions help a musician improve more than one long weekly session.",
            "Strong lyrics usually tell a clear story or capture a single vivid feeling in a song.",
            "Calluses on the fingertips make pressing guitar strings far less painful over time.",
            "Most popular songs are built from just a few chords repeated in a steady pattern.",
            "Playing along with recordings trains your ear to follow the rhythm of real music.",
            "Keeping a steady tempo matters more than playing every note perfectly.",
            "Learning a musical instrument as an adult is slower but still very rewarding.",
        ),
    ),
    Topic(
        "fitness",
        "exercise exercises exercising workout workouts muscle muscles strength cardio stretch "
        "stretches stretching gym gyms fitness squat squats endurance running runner runners "
        "jogging athlete athletes",
        (
            "building muscle strength",
            "starting a running routine",
            "stretching before a workout",
            "training at the gym",
            "improving cardio endurance",
        ),
        (
            "Muscles grow stronger when they are challenged and then given time to recover.",
            "A new runner should build mileage gradually to avoid common overuse injuries.",
            "Gentle stretching after a workout can help reduce stiffness the next day.",
            "Squats work several large muscles at once, which makes them very efficient.",
            "Consistency in exercise matters far more than the intensity of any single session.",
            "Cardio sessions at a comfortable pace build endurance without wearing you out.",
            "Sleep and protein both play a large part in recovering from strength training.",
            "Warming up for five minutes prepares the heart and muscles for harder exercise.",
            "Many gyms offer a free session with a trainer to teach proper form.",
            "Drinking enough water before and after running helps prevent cramps and fatigue.",
            "Tracking your workouts in a notebook makes progress easy to see over weeks.",
            "Rest days are part of fitness training, not a break from it.",
        ),
    ),
    Topic(
        "photography",
        "camera cameras photo photos photograph photographs photography photographer "
        "photographers lens lenses shutter aperture exposure exposures tripod tripods portrait "
        "portraits snapshot snapshots",
        (
            "taking better photos with a phone camera",
            "choosing a camera lens",
            "understanding aperture and shutter speed",
            "portrait photography",
            "using a tripod at night",
        ),
        (
            "Soft window light is one of the most flattering sources for a portrait.",
            "A wide aperture blurs the background and makes the subject stand out in a photo.",
            "A faster shutter speed freezes motion, while a slower one shows it as blur.",
            "A sturdy tripod lets you use long exposures at night without any shake.",
            "Phone cameras do best when you tap to focus and hold the device very still.",
            "A prime lens with a fixed focal length often produces sharper images than a zoom.",
            "Most photographers follow the rule of thirds to place the subject off center.",
            "Shooting in the early morning gives photos warm colors and long gentle shadows.",
            "Checking the exposure on the camera screen helps avoid washed out highlights.",
            "Cleaning the lens with a soft cloth is an easy fix for hazy pictures.",
            "Good portrait photography depends as much on making people relaxed as on gear.",
            "Taking many photos of the same scene raises the chance that one comes out just right.",
        ),
    ),
    Topic(
        "programming",
        "code coding coder program programs programming programmer programmers software "
        "function functions variable variables bug bugs debugging debugger python compiler "
        "algorithm algorithms developer developers",
        (
            "learning to code in Python",
            "debugging a program",
            "writing clean functions",
            "version control for software projects",
            "sorting algorithms",
        ),
        (
            "Beginners often choose Python because its code reads almost like plain English.",
            "A good function does one job and has a name that says what that job is.",
            "Most bugs are found faster by reading the error message carefully than by guessing.",
            "Version control lets programmers undo mistakes and see exactly how the software changed.",
            "Sorting algorithms differ mainly in how their speed changes as the input grows.",
            "Clear variable names make a program much easier to read months later.",
            "Writing small tests for each function catches many bugs before users ever see them.",
            "A debugger lets you pause a program and inspect the values of its variables.",
            "Breaking a large program into small modules keeps the code easier to change.",
            "Comments in code should explain why something is done, not merely what it does.",
            "Learning to program is mostly practice, so small daily projects help a great deal.",
            "Reading other people's code is one of the fastest ways to improve as a programmer.",
        ),
    ),
    Topic(
        "ocean life",
        "ocean oceans whale whales dolphin dolphins coral corals reef reefs shark sharks marine "
        "octopus octopuses jellyfish plankton fish seabed",
        (
            "whales and their migrations",
            "coral reefs",
            "how sharks hunt",
            "the intelligence of the octopus",
            "plankton in the ocean",
        ),
        (
            "Many whales travel thousands of miles each year between feeding and breeding grounds.",
            "Coral reefs cover a tiny part of the ocean floor yet shelter a quarter of marine species.",
            "Sharks sense faint electrical signals from prey hidden in the sand.",
            "An octopus can change both the color and texture of its skin in a split second.",
            "Plankton drift with the currents and form the base of almost every ocean food chain.",
            "Dolphins use clicks and whistles to find food and to keep in touch with their pod.",
            "Warmer water can cause corals to expel their algae, a process known as bleaching.",
            "Humpback whales are known for long, complex calls that can carry across the ocean.",
            "Most sharks must keep swimming so that water flows over their gills.",
            "Jellyfish have no brain or heart, yet they have survived in the ocean for millions of years.",
            "The deep ocean is darker and colder than any surface habitat, yet it teems with life.",
            "An octopus has three hearts and blue blood rich in copper.",
        ),
    ),
    Topic(
        "personal finance",
        "budget budgets budgeting saving savings invest investing investment investments "
        "investor investors debt debts loan loans retirement income expense expenses money "
        "credit fund funds paycheck mortgage",
        (
            "making a monthly budget",
            "saving for retirement",
            "paying off credit card debt",
            "investing in index funds",
            "building an emergency fund",
        ),
        (
            "A monthly budget starts by listing your income and every regular expense.",
            "Saving a fixed share of each paycheck makes retirement goals feel far less daunting.",
            "Paying off the debt with the highest interest rate first saves the most money.",
            "Index funds spread your money across many companies, which keeps costs and risks low.",
            "An emergency fund covering three to six months of expenses softens unexpected shocks.",
            "Automatic transfers into a savings account remove the temptation to spend the money first.",
            "Credit card balances grow quickly because unpaid interest is added to the debt every month.",
            "Investing early lets compound growth do much of the work over the decades.",
            "Tracking small daily expenses often reveals surprising leaks in a budget.",
            "A loan with a lower rate can still cost more if its term is much longer.",
            "Diversified investments tend to recover from market drops better than single stocks.",
            "Reviewing your budget every few months keeps it in line with changes in your income.",
        ),
    ),
    Topic(
        "ancient history",
        "rome roman romans empire empires emperor emperors ancient egypt egyptian egyptians "
        "pharaoh pharaohs pyramid pyramids greece greek greeks athens athenian athenians senate "
        "legion legions caesar gladiator gladiators",
        (
            "the Roman Empire",
            "the pyramids of ancient Egypt",
            "democracy in ancient Athens",
            "the life of Julius Caesar",
            "the fall of Rome",
        ),
        (
            "The Roman Empire at its height stretched from Britain to the deserts of Egypt.",
            "The great pyramids were built as tombs for pharaohs more than four thousand years ago.",
            "Citizens of ancient Athens voted directly on laws in a large public assembly.",
            "The career of Julius Caesar ended when senators stabbed him near the Roman senate.",
            "Historians still debate why the western Roman Empire collapsed in the fifth century.",
            "Many Roman roads were so well built that some are still in use today.",
            "Scribes in ancient Egypt recorded taxes, harvests, and prayers in hieroglyphs.",
            "The legions of the Roman army were famous for their discipline and engineering skill.",
            "Ancient Greek theater gave us both tragedy and comedy as forms of drama.",
            "Gladiator fights drew huge crowds to the arenas of ancient Rome.",
            "The pharaohs of Egypt were believed to be living gods who ruled by divine right.",
            "Early democracy in Athens excluded women, slaves, and foreigners from voting.",
        ),
    ),
    Topic(
        "weather",
        "weather rain rainfall raining storm storms thunderstorm thunderstorms cloud clouds "
        "forecast forecasts temperature temperatures humidity wind winds hurricane hurricanes "
        "snow snowfall tornado tornadoes meteorologist meteorologists lightning thunder",
        (
            "how thunderstorms form",
            "reading a weather forecast",
            "why hurricanes are dangerous",
            "the different types of clouds",
            "measuring humidity and rainfall",
        ),
        (
            "Thunderstorms form when warm, moist air rises quickly into colder layers of the atmosphere.",
            "A weather forecast gives probabilities, so a forty percent chance of rain is not a promise.",
            "Hurricanes draw their energy from warm sea water, which is why they weaken over land.",
            "Tall, dark clouds with flat tops often signal an approaching storm.",
            "High humidity makes hot days feel worse because sweat evaporates more slowly.",
            "Lightning heats the surrounding air so fast that it expands with a loud crack of thunder.",
            "Meteorologists use satellites, balloons, and computer models to predict the weather.",
            "Wind chill describes how much colder the air feels when a strong wind is blowing.",
            "Snow forms when water vapor freezes directly into ice crystals high in the clouds.",
            "A falling barometer reading usually means that wet and windy weather is on the way.",
            "Tornadoes are most common in spring, when warm and cold air masses collide.",
            "Rainfall totals are measured with a simple gauge that collects water in a narrow tube.",
        ),
    ),
    Topic(
        "dogs",
        "dog dogs puppy puppies leash leashes bark barks barking breed breeds veterinarian vet "
        "vets kennel canine pup pups",
        (
            "training a new puppy",
            "walking a dog on a leash",
            "choosing a dog breed",
            "keeping a dog healthy",
            "why dogs bark",
        ),
        (
            "A new puppy learns fastest with short, cheerful training sessions and plenty of praise.",
            "Dogs bark to warn, to greet, or simply because they are bored and lonely.",
            "Rewarding a loose leash teaches a dog that pulling never gets it anywhere faster.",
            "Every breed was developed for a job, and that history shapes its energy level.",
            "Regular visits to the vet catch health problems before they become serious.",
            "Most dogs need at least one long walk a day to stay calm at home.",
            "A crate can become a safe den for a puppy if it is introduced gently.",
            "Brushing a dog's teeth a few times a week prevents painful gum disease.",
            "Large breeds often have shorter lives and need joint care as they age.",
            "Puppies explore the world with their mouths, so chew toys save a lot of shoes.",
            "A dog that barks at every noise may need longer walks and more mental stimulation.",
            "Socializing puppies with many people and places early prevents fearfulness later.",
        ),
    ),
    Topic(
        "chess",
        "chess chessboard pawn pawns knight knights bishop bishops rook rooks checkmate castling "
        "gambit gambits grandmaster grandmasters endgame endgames stalemate",
        (
            "chess openings for beginners",
            "how the knight moves in chess",
            "winning chess endgames",
            "castling in chess",
            "the queen's gambit",
        ),
        (
            "Beginners in chess should aim to control the center squares early in the game.",
            "A knight moves in an L shape and is the only piece that can jump over others.",
            "In the endgame, the king becomes a strong piece and should move toward the center.",
            "Castling moves the king to safety and brings a rook into play in a single turn.",
            "A gambit offers a pawn early in exchange for faster development or attack.",
            "Checkmate happens when the king is attacked and has no legal way to escape.",
            "Bishops are strongest on open diagonals, while knights shine in closed positions.",
            "Studying famous grandmaster games teaches patterns that are hard to learn any other way.",
            "A pawn that reaches the last rank can be promoted to any other piece.",
            "Many chess players lose games by moving the same piece twice in the opening.",
            "Stalemate is a draw that occurs when the player to move has no legal move but is not in check.",
            "Two rooks working together can force checkmate against a lone king quite easily.",
        ),
    ),
    Topic(
        "geology",
        "volcano volcanoes volcanic lava magma eruption eruptions erupt erupts earthquake "
        "earthquakes rock rocks mineral minerals tectonic tectonics geologist geologists geology "
        "crust seismic",
        (
            "how volcanoes erupt",
            "the causes of earthquakes",
            "types of volcanic rock",
            "plate tectonics",
            "lava and magma",
        ),
        (
            "Volcanoes erupt when pressure from gas-rich magma forces it up through cracks in the crust.",
            "Most earthquakes happen along faults where huge slabs of rock grind past each other.",
            "Lava that cools quickly forms glassy rock, while slow cooling lets large crystals grow.",
            "Tectonic plates move only a few centimeters each year, about as fast as fingernails grow.",
            "Magma is called lava once it reaches the surface during an eruption.",
            "Geologists read layers of rock like pages in a book to reconstruct past events.",
            "Some volcanic islands are built entirely from layer upon layer of cooled lava.",
            "Seismic waves from a large earthquake can be detected on the far side of the globe.",
            "Minerals such as quartz and feldspar make up most of the granite in the crust.",
            "Sticky, silica-rich magma tends to produce explosive eruptions rather than gentle flows.",
            "Dormant volcanoes can remain quiet for centuries and still erupt again.",
            "Earthquake scales measure the energy released, with each step being far larger than the last.",
        ),
    ),
)
