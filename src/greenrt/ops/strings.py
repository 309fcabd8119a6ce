"""String and text ops: StringConcat, StringNormalizer, StringSplit, RegexFullMatch, TfIdfVectorizer, ImageDecoder.

String tensors are numpy object arrays of Python str; these ops work on them in Python (torch has no strings).
"""

from __future__ import annotations

import io
import re
import unicodedata

import numpy as np
import torch

from ..errors import GreenrtError
from .registry import op


def _str_array(values, shape) -> np.ndarray:
    """A numpy object array of str with the given shape."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


@op("StringConcat", 20)
def StringConcat(x, y):
    xb, yb = np.broadcast_arrays(np.asarray(x, dtype=object), np.asarray(y, dtype=object))
    return _str_array([str(a) + str(b) for a, b in zip(xb.ravel(), yb.ravel())], xb.shape)


def _strip_accents(s: str) -> str:
    if s.isascii():
        return s
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def _change_case(s: str, action: str) -> str:
    if action == "LOWER":
        return s.lower()
    if action == "UPPER":
        return s.upper()
    if action == "NONE":
        return s
    raise GreenrtError(f"StringNormalizer: unknown case_change_action {action!r}")


@op("StringNormalizer", 10)
def StringNormalizer(x, *, case_change_action="NONE", is_case_sensitive=0, locale="", stopwords=()):
    """Stopwords are removed (exact or case-insensitive), then case changes; empty results are dropped."""
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[0] != 1):
        raise GreenrtError(f"StringNormalizer: input must be [C] or [1, C], got shape {x.shape}")
    stops = set(stopwords or ())
    folded_stops = {s.lower() for s in stops}
    kept = []
    for s in x.ravel():
        s = _strip_accents(str(s))
        if is_case_sensitive:
            drop = s in stops
        else:
            drop = s.lower() in folded_stops
        if not drop:
            kept.append(_change_case(s, case_change_action))
    if not kept:
        kept = [""]
    shape = (len(kept),) if x.ndim == 1 else (1, len(kept))
    return _str_array(kept, shape)


@op("StringSplit", 20)
def StringSplit(x, *, delimiter="", maxsplit=None, ctx=None):
    """Splits each string (on whitespace runs if delimiter is empty); pads with '' to the longest split."""
    sep = delimiter or None
    limit = -1 if maxsplit is None else int(maxsplit)
    parts = [str(s).split(sep, limit) for s in x.ravel()]
    lengths = [len(p) for p in parts]
    width = max(lengths, default=0)
    flat = [w for p in parts for w in p + [""] * (width - len(p))]
    substrings = _str_array(flat, (*x.shape, width))
    counts = torch.tensor(lengths, dtype=torch.int64, device=ctx.device).reshape(x.shape)
    return substrings, counts


@op("RegexFullMatch", 20)
def RegexFullMatch(x, *, pattern="", ctx=None):
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise GreenrtError(f"RegexFullMatch: invalid pattern {pattern!r}: {exc}") from exc
    matches = [regex.fullmatch(str(s)) is not None for s in x.ravel()]
    return torch.tensor(matches, dtype=torch.bool, device=ctx.device).reshape(x.shape)


def _tfidf_table(pool, ngram_counts, ngram_indexes, min_n, max_n):
    """{ngram tuple: output column} for the pool's n-grams with min_n <= n <= max_n."""
    table = {}
    bounds = list(ngram_counts) + [len(pool)]
    position = 0
    for k in range(len(ngram_counts)):
        n = k + 1
        items = pool[bounds[k]:bounds[k + 1]]
        for j in range(0, len(items) - n + 1, n):
            if min_n <= n <= max_n:
                table[tuple(items[j:j + n])] = int(ngram_indexes[position])
            position += 1
    return table


def _tfidf_count_row(row, table, counts, min_n, max_n, max_skip):
    """Adds the n-gram hits of one row into ``counts``; unigrams count once, longer grams once per skip."""
    length = len(row)
    for n in range(min_n, max_n + 1):
        skips = 1 if n == 1 else max_skip + 1
        for distance in range(1, skips + 1):
            span = distance * (n - 1)
            for start in range(0, length - span):
                column = table.get(tuple(row[start:start + span + 1:distance]))
                if column is not None:
                    counts[column] += 1


@op("TfIdfVectorizer", 9)
def TfIdfVectorizer(x, *, max_gram_length, max_skip_count, min_gram_length, mode, ngram_counts, ngram_indexes,
                    pool_int64s=None, pool_strings=None, weights=None, ctx=None):
    is_string = isinstance(x, np.ndarray)
    device = ctx.device if is_string else x.device
    values = x if is_string else x.cpu().numpy()
    pool = [str(s) for s in pool_strings] if pool_strings else [int(v) for v in (pool_int64s or [])]
    table = _tfidf_table(pool, ngram_counts, ngram_indexes, min_gram_length, max_gram_length)
    size = max(ngram_indexes) + 1
    rows = values.reshape(1, -1) if values.ndim <= 1 else values
    counts = np.zeros((rows.shape[0], size), dtype=np.float32)
    for r, row in enumerate(rows):
        items = [str(v) for v in row] if is_string else [int(v) for v in row]
        _tfidf_count_row(items, table, counts[r], min_gram_length, max_gram_length, max_skip_count)
    result = torch.from_numpy(counts).to(device)
    if values.ndim <= 1:
        result = result[0]
    w = torch.tensor(weights, dtype=torch.float32, device=device) if weights else None
    if mode == "TF":
        return result
    if mode == "IDF":
        return (result > 0).to(torch.float32) * (w if w is not None else 1.0)
    if mode == "TFIDF":
        return result * w if w is not None else result
    raise GreenrtError(f"TfIdfVectorizer: unknown mode {mode!r}")


@op("ImageDecoder", 20)
def ImageDecoder(encoded, *, pixel_format="RGB"):
    """Decodes an encoded image (uint8 bytes) to HWC uint8 with Pillow."""
    try:
        import PIL.Image
    except ImportError as exc:
        raise GreenrtError("ImageDecoder needs Pillow (PIL), which is not installed") from exc
    data = encoded.cpu().numpy().tobytes()
    image = PIL.Image.open(io.BytesIO(data))
    if pixel_format == "Grayscale":
        array = np.asarray(image.convert("L"))[:, :, None]
    elif pixel_format in ("RGB", "BGR"):
        array = np.asarray(image.convert("RGB"))
        if pixel_format == "BGR":
            array = array[:, :, ::-1]
    else:
        raise GreenrtError(f"ImageDecoder: unsupported pixel_format {pixel_format!r}")
    return torch.from_numpy(array.copy()).to(encoded.device)
