"""The guessed config as text. The guessed blocks (`in.decoders`, `in.parser`, `out.key_column_name`)
are written here, key by key in a stable order, with `# ` comments on what the sample showed and
`# check: ` comments on what it left open. They are spliced into the seed's own text, so its template
tags, includes and comments stay; where that cannot be done, the seed is written as rendered."""

from __future__ import annotations

import json
import re
from typing import Any

from pipelines.guess.model import Guess, KeyGuess

TOP_LEVEL = ("in", "filters", "out", "exec")
TOP_KEY = re.compile(r"([A-Za-z_][\w-]*)\s*:(.*)$")  # a key at column 0
PARSER_ORDER = ("type", "charset", "delimiter", "quote", "escape", "skip_header_lines", "null_string",
                "allow_extra_columns", "allow_optional_columns", "columns")
WORD = re.compile(r"[^\W\d]\w*(?:-\w+)*")  # plain in YAML: letters, digits, _, inner -
YAML_WORDS = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])  # plain, these are not strings
NOT_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")  # YAML refuses these or reads them as line breaks
TEMPLATE_TAG = re.compile(r"\{(?=[{%])")  # where Liquid would see a tag


def ordered(options: dict[str, Any]) -> dict[str, Any]:
    """Parser options in the stable order (those the engine does not know last, as given)."""
    known = {k: options[k] for k in PARSER_ORDER if k in options}
    return known | {k: v for k, v in options.items() if k not in known}


def scalar(value: Any) -> str:
    """A YAML value that loads back as `value` (strings double-quoted, with nothing Liquid would read)."""
    if value is None or isinstance(value, bool | int):
        return json.dumps(value)
    if isinstance(value, str):
        text = NOT_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False))
        return TEMPLATE_TAG.sub(r"\\x7b", text)
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30).removesuffix("\n...\n").strip()


def word(value: Any) -> str:
    """`value` as a plain word when it is one (user_id, csv, UTF-8), else as `scalar` writes it."""
    if isinstance(value, str) and WORD.fullmatch(value) and value.lower() not in YAML_WORDS:
        return value
    return scalar(value)


def comment(indent: str, text: str) -> str:
    """One comment line: line breaks and template tags of sampled text made harmless."""
    return f"{indent}# " + TEMPLATE_TAG.sub("{ ", re.sub(r"[\r\n]+", " ", text))


def in_lines(guess: Guess) -> list[str]:
    """`decoders:` (when guessed) and `parser:` with its comments, as keys of `in:`."""
    lines = []
    if guess.decoders:
        lines.append("  decoders: [" + ", ".join(f"{{type: {d}}}" for d in guess.decoders) + "]")
    elif guess.decoders == []:
        lines.append(comment("  ", "decoders: none: the data is not compressed (without decoders, each object's first bytes choose)"))
    lines.append("  parser:")
    lines += [comment("    ", note) for note in [guess.summary, *guess.notes]]
    for key, value in guess.parser.items():
        if key == "columns" and isinstance(value, list):
            lines.append("    columns:")
            lines += _column_lines(value, guess.column_notes)
        else:
            lines.append(f"    {key}: {word(value) if key in ('type', 'charset') else scalar(value)}")
    return lines


def _column_lines(columns: list[Any], notes: dict[str, list[str]]) -> list[str]:
    lines = []
    for column in columns:
        if not isinstance(column, dict):
            lines.append(f"      - {scalar(column)}")
            continue
        lines += [comment("      ", note) for note in notes.get(column.get("name"), [])]
        lines.append("      - {" + ", ".join(f"{word(k)}: {word(v) if k in ('name', 'type') else scalar(v)}" for k, v in column.items()) + "}")
    return lines


def out_lines(key: KeyGuess | None) -> list[str]:
    """`key_column_name:` with its comment, as keys of `out:` (nothing when the seed sets it)."""
    if key is None:
        return []
    lines = [comment("  ", note) for note in key.notes]
    if key.name is not None:
        lines.append(f"  key_column_name: {word(key.name)}")
    return lines


def splice(text: str, in_added: list[str], out_added: list[str], drop_parser: bool) -> str | None:
    """The seed's text with the lines added at the end of its `in:` and `out:` blocks (the seed's own
    `parser:` dropped first: the guess holds its options); None when a block is not found as one."""
    lines = text.split("\n")
    block = _block(lines, "in")
    if block is None:
        return None
    if drop_parser and not _drop_key(lines, *block, "parser"):
        return None
    for name, added in (("in", in_added), ("out", out_added)):
        block = _block(lines, name)
        if block is None:
            return None
        at = _last_content(lines, *block) + 1
        lines[at:at] = added
    return "\n".join(lines)


def _block(lines: list[str], name: str) -> tuple[int, int] | None:
    """(line of `name:`, line after its block) for a top-level key written once, as a block."""
    starts = [i for i, line in enumerate(lines) if (m := TOP_KEY.match(line)) and m.group(1) == name]
    if len(starts) != 1 or TOP_KEY.match(lines[starts[0]]).group(2).split("#")[0].strip():  # type: ignore[union-attr]
        return None
    start = starts[0]
    end = next((i for i in range(start + 1, len(lines)) if TOP_KEY.match(lines[i])), len(lines))
    return start, end


def _last_content(lines: list[str], start: int, end: int) -> int:
    """The block's last line that is neither blank nor a comment at column 0 (those may head the next key)."""
    return next((i for i in range(end - 1, start, -1) if lines[i].strip() and not lines[i].startswith("#")), start)


def _drop_key(lines: list[str], start: int, end: int, key: str) -> bool:
    """Removes `key:` and its nested lines from the block; False when it is not found as a child key."""
    children = [i for i in range(start + 1, end) if lines[i].strip() and not lines[i].lstrip().startswith("#") and lines[i][0] in " \t"]
    if not children:
        return False
    indent = _indent(lines[children[0]])
    at = next((i for i in children if _indent(lines[i]) == indent and re.match(rf"\s*{key}\s*:", lines[i])), None)
    if at is None:
        return False
    last = at
    for i in range(at + 1, end):
        if lines[i].strip():
            if _indent(lines[i]) <= indent:
                break
            last = i
    del lines[at : last + 1]
    return True


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rendered(data: dict[str, Any], guess: Guess, in_added: list[str], out_added: list[str], reason: str) -> str:
    """The seed as rendered (every section in the stable order), with the guessed lines in `in:` and `out:`."""
    import yaml

    lines = [comment("", f"the seed's template is not kept ({reason}): this is the seed as rendered, with the guess")]
    dropped = {"in": {"parser", *(("decoders",) if guess.decoders else ())}, "out": {"key_column_name"} if guess.key and guess.key.name else set()}
    for key in [*TOP_LEVEL, *(k for k in data if k not in TOP_LEVEL)]:
        if key not in data:
            continue
        if key in dropped:
            own = {k: v for k, v in data[key].items() if k not in dropped[key]}
            body = yaml.safe_dump(own, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1 << 30)
            lines += [f"{key}:", *("  " + line for line in body.splitlines()), *(in_added if key == "in" else out_added)]
        else:
            lines += yaml.safe_dump({key: data[key]}, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1 << 30).splitlines()
    return "\n".join(lines) + "\n"
