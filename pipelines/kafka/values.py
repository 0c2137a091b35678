"""The Kafka output's rows to record keys and values, on the Python path (the compiled batch loop
makes its own): keys as text, values as JSON objects of the value columns or as Avro records in
the Confluent wire format."""

from __future__ import annotations

from typing import Any


def keyed_rows(rows: list[list[Any]], line_nos: list[int], key_index: int | None) -> tuple[list[list[Any]], list[int], list[str] | None, list[int]]:
    """(rows, their lines, their keys as text, the lines of rows whose key column is empty, left out)."""
    if key_index is None:
        return rows, line_nos, None, []
    kept, kept_lines, keys, empty = [], [], [], []
    for row, line in zip(rows, line_nos):
        key = row[key_index]
        if key is None or key == "":
            empty.append(line)
            continue
        keys.append(key if isinstance(key, str) else str(key))
        kept.append(row)
        kept_lines.append(line)
    return kept, kept_lines, keys, empty


def json_values(rows: list[list[Any]], names: list[str], indexes: list[int], whole_row: bool) -> list[bytes | None]:
    """Each row's value: the JSON object {names[j]: row[indexes[j]]} (`whole_row`: indexes are every column, in order)."""
    import orjson

    dumps = orjson.dumps
    if whole_row:
        return [dumps(dict(zip(names, row))) for row in rows]
    return [dumps(dict(zip(names, [row[i] for i in indexes]))) for row in rows]


def avro_values(rows: list[list[Any]], to_records: Any, serializer: Any) -> tuple[list[bytes | None], list[tuple[int, str]]]:
    """Each row's value in the Avro wire format (None for a row that does not fit the schema), and
    [(position, reason)] of those rows."""
    records, bad = to_records(rows)
    values, unfit = serializer.encode_batch(records)
    return values, bad + [(p, f"the value {reason}") for p, reason in unfit]
