"""Token counting for datasets: model context limits, the o200k_base encoding offline, exact counts.

Used by ``_scan`` only for the lines whose byte bound could exceed the context, and for every
line when exact token statistics are asked for. ``tiktoken`` is imported here and only when a
count is needed, so validating a file normally never pays for it.

The encoding must never come from the network. ``tiktoken.get_encoding("o200k_base")`` would
download ``o200k_base.tiktoken``; instead the ranks come from the ``quicktok-v1`` package, which
ships the same vocabulary in a binary form. The first use converts it to tiktoken's text format
(base64 token, space, rank, one per line), checks that the result is byte for byte the file
tiktoken publishes (its SHA-256 is below), and keeps it in a cache directory so later runs only
read it back (and check it again). With no writable cache directory the conversion stays in
memory. Loading the encoding takes about half a second and some 80 MB (tiktoken's tables), once
per process; parallel scans load it before forking, so their workers share it. Counting follows the OpenAI
cookbook's ``num_tokens_from_messages``: 3 tokens per message, the tokens of its role, content and name (+1
for a name), 3 to prime the reply; images count a fixed allowance (``_examples.IMAGE_TOKENS``), tool calls the
tokens of their name and arguments, tool definitions the tokens of their compact JSON.

One huge example must cost bounded time and memory. ``TokenCounter.floor`` proves an example
over the context from the lengths of its texts alone (no o200k token is longer than
``MAX_TOKEN_BYTES`` bytes, and a character is at least one byte), so such an example is never
tokenized. Otherwise ``example(..., ceiling=)`` counts until the total passes the ceiling and
stops there; long texts are encoded in pieces of about ``PIECE_CHARS`` characters cut where
o200k's pre-tokenizer cuts anyway (between a letter and a space or newline followed by a
letter), so a count that stays under the ceiling is exact. A text with no such cut in a long
stretch (a run of one letter, unspaced script) is cut anyway at the stretch's end; there the
count may differ by a few tokens per cut, which only matters for texts of hundreds of thousands
of characters.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunekeeper.datasets._examples import IMAGE_TOKENS, IMAGE_TOKENS_LOW, REPLY_TOKENS

if TYPE_CHECKING:
    import tiktoken

O200K_NAME = "o200k_base"
O200K_FILE = "o200k_base.tiktoken"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
MAX_TOKEN_BYTES = 128  # the longest o200k_base token; a test checks it against the vocabulary
PIECE_CHARS = 1 << 16  # long texts are encoded in pieces of about this many characters
_CUT_SEARCH = 1 << 12  # how far back from a piece's end to look for a word boundary
# The pre-tokenization pattern of o200k_base, as tiktoken defines the encoding.
O200K_PATTERN = (
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    "|"
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    "|"
    r"""\p{N}{1,3}"""
    "|"
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*"""
    "|"
    r"""\s*[\r\n]+"""
    "|"
    r"""\s+(?!\S)"""
    "|"
    r"""\s+"""
)


class EncodingUnavailable(RuntimeError):
    """The o200k_base ranks could be found neither in the cache nor in the quicktok-v1 package."""


def cache_dir() -> Path:
    """Where the converted encoding is kept: $TUNEKEEPER_CACHE_DIR, else the user's cache folder."""
    explicit = os.environ.get("TUNEKEEPER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tunekeeper"


def convert_quicktok_vocab(vocab: bytes) -> bytes:
    """Turn quicktok's binary vocabulary (u32 count; per token u16 length, bytes, u32 rank) into
    tiktoken's text format, ordered by rank."""
    (count,) = struct.unpack_from("<I", vocab, 0)
    offset = 4
    records: list[tuple[int, bytes]] = []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", vocab, offset)
        offset += 2
        token = vocab[offset: offset + length]
        offset += length
        (rank,) = struct.unpack_from("<I", vocab, offset)
        offset += 4
        records.append((rank, token))
    if offset != len(vocab):
        raise EncodingUnavailable(f"quicktok vocabulary has {len(vocab) - offset} trailing bytes")
    records.sort()
    return b"".join(base64.b64encode(token) + b" " + str(rank).encode() + b"\n" for rank, token in records)


def _quicktok_vocab_path() -> Path:
    spec = importlib.util.find_spec("quicktok")  # locate the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise EncodingUnavailable("the quicktok-v1 package is not installed; pip install quicktok-v1")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "o200k.vocab"


def o200k_bytes() -> bytes:
    """The o200k_base.tiktoken file's bytes, from the cache or converted (and then cached)."""
    cached = cache_dir() / O200K_FILE
    try:
        data = cached.read_bytes()
    except OSError:
        data = b""
    if data and hashlib.sha256(data).hexdigest() == O200K_SHA256:
        return data
    try:
        data = convert_quicktok_vocab(_quicktok_vocab_path().read_bytes())
    except OSError as exc:
        raise EncodingUnavailable(f"cannot read quicktok's o200k vocabulary: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != O200K_SHA256:
        raise EncodingUnavailable(f"converted o200k_base has SHA-256 {digest}, expected {O200K_SHA256}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        scratch = cached.with_name(f"{O200K_FILE}.{os.getpid()}.tmp")
        scratch.write_bytes(data)
        os.replace(scratch, cached)
    except OSError:
        pass  # read-only home: keep the conversion in memory for this process
    return data


_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None


def o200k_base() -> tiktoken.Encoding:
    """The o200k_base encoding, built offline (see the module docstring); one per process."""
    global _encoding
    with _lock:
        if _encoding is None:
            import tiktoken

            ranks: dict[bytes, int] = {}
            for row in o200k_bytes().splitlines():
                token, rank = row.split(b" ")
                ranks[base64.b64decode(token)] = int(rank)
            _encoding = tiktoken.Encoding(
                name=O200K_NAME,
                pat_str=O200K_PATTERN,
                mergeable_ranks=ranks,
                special_tokens=O200K_SPECIAL_TOKENS,
            )
        return _encoding


class _OverCeiling(Exception):
    """Raised inside a budgeted count once the texts counted so far pass the ceiling."""

    def __init__(self, tokens: int) -> None:
        super().__init__(tokens)
        self.tokens = tokens


def _cut(text: str, end: int) -> int:
    """A cut point at or before ``end`` where o200k's pre-tokenizer cuts anyway, else ``end``.

    Before a space or newline that follows a letter and precedes a letter: the piece holding
    the letter ends there (only the letter patterns match letters, and none of them spans a
    space or a line break), and the next piece starts there whatever came before.
    """
    for index in range(min(end, len(text) - 2), max(0, end - _CUT_SEARCH), -1):
        if text[index] in " \n" and text[index - 1].isalpha() and text[index + 1].isalpha():
            return index
    return end


class TokenCounter:
    """Exact token counts of examples with o200k_base, following the cookbook's convention."""

    def __init__(self) -> None:
        self._encoder: Any = None  # o200k_base's encode_ordinary, loaded by the first text counted
        self._ceiling: int | None = None  # while a budgeted count runs: tokens it may reach
        self._spent = 0  # text tokens counted so far in the budgeted count
        self.stopped = False  # the last example() passed its ceiling: its figures are lower bounds

    def _encode(self, text: str) -> list[int]:
        if self._encoder is None:
            self._encoder = o200k_base().encode_ordinary
        encoded: list[int] = self._encoder(text)
        return encoded

    def text(self, text: object) -> int:
        if not isinstance(text, str) or not text:
            return 0
        if self._ceiling is None and len(text) <= PIECE_CHARS:
            return len(self._encode(text))
        tokens = 0
        start = 0
        while start < len(text):
            end = len(text) if len(text) - start <= PIECE_CHARS else _cut(text, start + PIECE_CHARS)
            tokens += len(self._encode(text[start:end]))
            start = end
            if self._ceiling is not None and self._spent + tokens > self._ceiling:
                raise _OverCeiling(self._spent + tokens)
        self._spent += tokens
        return tokens

    def messages(self, messages: object) -> int:
        if not isinstance(messages, list):
            return 0
        tokens = REPLY_TOKENS
        for message in messages:
            tokens += self.message(message)
        return tokens

    def message(self, message: object) -> int:
        if not isinstance(message, dict):
            return 0
        tokens = 3 + self.text(message.get("role"))
        content = message.get("content")
        if isinstance(content, str):
            tokens += self.text(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "image_url":
                    image = part.get("image_url")
                    low = isinstance(image, dict) and image.get("detail") == "low"
                    tokens += IMAGE_TOKENS_LOW if low else IMAGE_TOKENS
                else:
                    tokens += self.text(part.get("text"))
        if isinstance(message.get("name"), str):
            tokens += self.text(message["name"]) + 1
        calls = message.get("tool_calls")
        functions: list[object] = [call.get("function") for call in calls if isinstance(call, dict)] \
            if isinstance(calls, list) else []
        functions.append(message.get("function_call"))
        for function in functions:
            if isinstance(function, dict):
                tokens += self.text(function.get("name")) + self.text(function.get("arguments"))
        return tokens

    def definitions(self, holder: object) -> int:
        """Tokens of the tool or function definitions an example (or a DPO input) carries."""
        if not isinstance(holder, dict):
            return 0
        import orjson

        tokens = 0
        for key in ("tools", "functions"):
            if isinstance(holder.get(key), list):
                try:
                    tokens += self.text(orjson.dumps(holder[key]).decode())
                except TypeError:  # a number JSON cannot hold: count its text instead
                    tokens += self.text(repr(holder[key]))
        return tokens

    def example(self, method: str, obj: dict[str, Any], *, ceiling: int | None = None) -> tuple[int, int]:
        """(tokens for the statistics, tokens that must fit the context) of one example.

        For DPO the statistics count the input and both outputs; the context must hold the input
        and the longer output, which is what one training sequence is. With a ``ceiling``,
        counting stops once the tokens that must fit are proven above it: both figures are then
        lower bounds (above the ceiling), not exact counts, and ``stopped`` is set.
        """
        self.stopped = False
        if method != "dpo":
            try:
                with self._budget(ceiling):
                    tokens = self.messages(obj.get("messages")) + self.definitions(obj)
            except _OverCeiling as over:
                return over.tokens, over.tokens
            return tokens, tokens
        inputs = obj.get("input")
        try:
            with self._budget(ceiling):
                prompt = self.definitions(inputs)
                if isinstance(inputs, dict):
                    prompt += self.messages(inputs.get("messages"))
        except _OverCeiling as over:
            return over.tokens, over.tokens
        outputs = []
        for name in ("preferred_output", "non_preferred_output"):
            try:
                with self._budget(None if ceiling is None else ceiling - prompt):
                    outputs.append(max(0, self.messages(obj.get(name)) - REPLY_TOKENS))
            except _OverCeiling as over:
                return prompt + over.tokens, prompt + over.tokens
        return prompt + sum(outputs), prompt + max(outputs)

    def floor(self, method: str, obj: dict[str, Any]) -> int:
        """A lower bound of the tokens that must fit the context, from text lengths alone (no
        tokenizer): each text has at least ceil(characters / MAX_TOKEN_BYTES) tokens."""
        return _Floor().example(method, obj)[1]

    @contextlib.contextmanager
    def _budget(self, ceiling: int | None) -> Iterator[None]:
        self._ceiling, self._spent = ceiling, 0
        try:
            yield
        except _OverCeiling:
            self.stopped = True
            raise
        finally:
            self._ceiling, self._spent = None, 0


class _Floor(TokenCounter):
    """The cookbook's walk with each text's tokens replaced by their lower bound."""

    def __init__(self) -> None:  # no encoding: nothing is tokenized
        self._encoder = None
        self._ceiling = None
        self._spent = 0
        self.stopped = False

    def text(self, text: object) -> int:
        return -(-len(text) // MAX_TOKEN_BYTES) if isinstance(text, str) else 0
