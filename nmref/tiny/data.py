"""Data for the tiny experiments: a built-in text source whose entropy rate is known exactly,
user text files, tokenisation (BPE from ``tokenizers``, or raw bytes), split and batching.

**The built-in corpus** is text emitted by a first-order Markov chain over ``V`` made-up words:
word ``i`` is followed by one of ``b`` successors with Dirichlet(0.7) probabilities ``P[i, ·]``
(successor ``i+1 mod V`` is always present and word 0 may repeat, so the chain is irreducible and
aperiodic), words are joined by single spaces. With ``π`` the stationary distribution,

    H_word = Σ_i π_i · H(P[i, ·])                    (bits per word, the entropy rate)
    h_char = H_word / Σ_i π_i (len(w_i) + 1)         (bits per character)

The second line holds because the text is an injective, space-delimited spelling of the word
sequence (a renewal argument). On a validation text of ``C`` characters cut into ``N`` tokens, no
model can do better on average than ``ln 2 · h_char · C / N`` nats per token — the **floor**
perplexity ``exp(ln 2 · h_char · C/N)`` reported next to every measured perplexity. (A model that
only sees ``seq_len`` tokens of context is bounded further away by the start of each window; the
floor is the limit with unbounded context.)

Split: the text is cut at the first space after ``(1 − val_fraction)`` of its characters; the
tokenizer is trained on the training part only, so nothing of the validation text leaks into it.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import NMRefValueError

__all__ = ["MarkovSource", "markov_source", "generate_text", "load_text", "split_text", "Tokenized",
           "tokenize", "train_batch", "eval_windows"]


@dataclass(frozen=True)
class MarkovSource:
    words: tuple
    successors: np.ndarray    # [V, b] int64
    probs: np.ndarray         # [V, b] float64, rows sum to 1

    def stationary(self) -> np.ndarray:
        """π with ``π P = π`` (power iteration in float64 to 1e-15)."""
        v = len(self.words)
        dense = np.zeros((v, v))
        np.add.at(dense, (np.repeat(np.arange(v), self.successors.shape[1]), self.successors.reshape(-1)),
                  self.probs.reshape(-1))
        pi = np.full(v, 1.0 / v)
        for _ in range(100_000):
            nxt = pi @ dense
            if np.max(np.abs(nxt - pi)) < 1e-15:
                return nxt
            pi = nxt
        raise RuntimeError("stationary distribution did not converge")  # pragma: no cover

    def entropy_bits_per_word(self) -> float:
        p = self.probs
        h = -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=1)
        return float(self.stationary() @ h)

    def entropy_bits_per_char(self) -> float:
        lengths = np.array([len(w) + 1 for w in self.words], dtype=np.float64)
        return self.entropy_bits_per_word() / float(self.stationary() @ lengths)


def markov_source(vocab: int, branching: int, rng: np.random.Generator) -> MarkovSource:
    """A random source: ``vocab`` distinct lowercase words of 2–7 letters, ``branching`` successors each."""
    words: list[str] = []
    seen = set()
    letters = np.array(list(string.ascii_lowercase))
    while len(words) < vocab:
        w = "".join(rng.choice(letters, size=int(rng.integers(2, 8))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    succ = np.empty((vocab, branching), dtype=np.int64)
    for i in range(vocab):
        first = 0 if i == vocab - 1 else i + 1   # the cycle 0→1→…→V−1→0 makes it irreducible
        others = [j for j in rng.permutation(vocab) if j != first][: branching - 1]
        succ[i] = [first, *others]
    if branching > 1 and 0 not in succ[0]:
        succ[0, -1] = 0                          # a self-loop makes it aperiodic
    probs = rng.dirichlet(np.full(branching, 0.7), size=vocab)
    return MarkovSource(tuple(words), succ, probs)


def generate_text(source: MarkovSource, n_words: int, rng: np.random.Generator) -> str:
    """``n_words`` words of the chain, the first drawn from π, joined by spaces."""
    cum = np.cumsum(source.probs, axis=1)
    cum[:, -1] = 1.0
    pi = source.stationary()
    state = int(np.searchsorted(np.cumsum(pi), rng.random(), side="right").clip(0, len(pi) - 1))
    u = rng.random(n_words)
    out = np.empty(n_words, dtype=np.int64)
    succ = source.successors
    for i in range(n_words):
        out[i] = state
        state = int(succ[state, np.searchsorted(cum[state], u[i], side="right")])
    return " ".join(source.words[j] for j in out)


def load_text(path) -> str:
    """Read a UTF-8 text file; a missing, unreadable, non-UTF-8 or empty file raises."""
    p = Path(path)
    if not p.exists():
        raise NMRefValueError(f"text file {str(p)!r} does not exist")
    if not p.is_file():
        raise NMRefValueError(f"text path {str(p)!r} is not a regular file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise NMRefValueError(f"text file {str(p)!r} is not valid UTF-8: {e}") from None
    if not text.strip():
        raise NMRefValueError(f"text file {str(p)!r} is empty (no non-whitespace characters)")
    return text


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Cut at the first space at or after ``(1 − val_fraction)·len(text)`` (or exactly there if none)."""
    cut = int(len(text) * (1 - val_fraction))
    sp = text.find(" ", cut)
    cut = sp if 0 < sp < len(text) - 1 else cut
    return text[:cut], text[cut:]


@dataclass(frozen=True)
class Tokenized:
    train: np.ndarray          # int32 token ids
    val: np.ndarray
    vocab_size: int
    val_chars: int             # characters of the validation text
    tokenizer_json: str | None  # the trained BPE (tokenizers' JSON) or None for bytes


def tokenize(train_text: str, val_text: str, kind: str, vocab_size: int) -> Tokenized:
    """BPE (byte-level alphabet, so no unknown tokens) trained on ``train_text`` only, or raw UTF-8 bytes."""
    if kind == "byte":
        tr = np.frombuffer(train_text.encode("utf-8"), dtype=np.uint8).astype(np.int32)
        va = np.frombuffer(val_text.encode("utf-8"), dtype=np.uint8).astype(np.int32)
        return Tokenized(tr, va, 256, len(val_text), None)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    chunk = 1 << 16  # the trainer takes an iterator of strings; chunks keep memory flat
    tok.train_from_iterator((train_text[i:i + chunk] for i in range(0, len(train_text), chunk)), trainer=trainer)
    tr = np.array(tok.encode(train_text).ids, dtype=np.int32)
    va = np.array(tok.encode(val_text).ids, dtype=np.int32)
    return Tokenized(tr, va, tok.get_vocab_size(), len(val_text), tok.to_str())


def train_batch(tokens: np.ndarray, seq_len: int, batch: int, seed: int, stage: int, step: int):
    """Inputs and next-token targets ``[batch, seq_len]`` at random offsets drawn from a generator
    seeded by ``(seed, stage, step)`` alone — so a resumed run sees the very same batches."""
    rng = np.random.default_rng([seed, stage, step])
    starts = rng.integers(0, len(tokens) - seq_len, size=batch)
    idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
    win = tokens[idx]
    return win[:, :-1], win[:, 1:]


def eval_windows(tokens: np.ndarray, seq_len: int, count: int):
    """Up to ``count`` non-overlapping windows evenly spaced over ``tokens`` (the same every time)."""
    n_win = (len(tokens) - 1) // seq_len
    if n_win < 1:
        raise NMRefValueError(f"the validation split has {len(tokens)} tokens, fewer than seq_len+1={seq_len + 1}")
    pick = np.unique(np.linspace(0, n_win - 1, num=min(count, n_win)).round().astype(np.int64))
    idx = pick[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    win = tokens[idx]
    return win[:, :-1], win[:, 1:]
