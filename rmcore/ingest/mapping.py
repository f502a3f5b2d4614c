"""`--map`: name the columns of a source that no detector knows, e.g.
`--map prompt=question,chosen=response_j,rejected=response_k,label=p_chosen`.

The named columns are renamed to the canonical keys before the format is detected, so a
mapped source is read as any source with those keys (text columns: TRL's explicit format,
message lists: the conversational one). Every other column stays in provenance.
"""

from __future__ import annotations

from dataclasses import replace

from rmcore.errors import FormatError, InvalidArgument
from rmcore.ingest.sources import ParsedRows, RawRecords

MAP_TARGETS = ("prompt", "chosen", "rejected", "label", "split")


def parse_map(text: str | None) -> dict[str, str] | None:
    """`target=column,...` as {target: column}; raises InvalidArgument naming the problem."""
    if not text:
        return None
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        target, sep, column = (s.strip() for s in part.partition("="))
        if not sep or not target or not column:
            raise InvalidArgument(f"--map: {part!r} is not target=column")
        if target not in MAP_TARGETS:
            raise InvalidArgument(
                f"--map: unknown target {target!r}; expected one of {', '.join(MAP_TARGETS)}"
            )
        if target in mapping:
            raise InvalidArgument(f"--map: {target!r} is mapped twice")
        mapping[target] = column
    if len(set(mapping.values())) < len(mapping):
        raise InvalidArgument("--map: one column is mapped to two targets")
    return mapping


def _columns(raw: RawRecords) -> list[str]:
    if raw.table is not None:
        return raw.table.columns
    seen: dict[str, None] = {}
    for rec in raw.records:
        seen.update(dict.fromkeys(rec or ()))
    return list(seen)


def remap(raw: RawRecords, mapping: dict[str, str] | None) -> RawRecords:
    """The source with the mapped columns under their canonical names. Raises FormatError for
    a mapped column the source lacks, or a target name another column already holds."""
    if not mapping:
        return raw
    columns = _columns(raw)
    missing = [c for c in mapping.values() if c not in columns]
    if missing:
        raise FormatError(
            f"--map names {', '.join(map(repr, missing))}, not a column of the source;"
            f" it has {', '.join(columns[:30])}"
        )
    renamed = {column: target for target, column in mapping.items()}
    taken = [t for t in mapping if t in columns and t not in renamed]
    if taken:
        raise FormatError(
            f"--map: the source already has a column {taken[0]!r}; map that column too"
            f" (e.g. {taken[0]}=<another column>) or leave {taken[0]!r} unmapped"
        )

    def rows() -> ParsedRows:
        parsed = raw.rows
        records = [
            None if r is None else {renamed.get(k, k): v for k, v in r.items()}
            for r in parsed.records
        ]
        return parsed._replace(records=records)

    table = None if raw.table is None else raw.table.rename(renamed)
    # `lines` would hand detection the unmapped records: quarantine shows the mapped row.
    return replace(raw, parse=rows, table=table, lines=None)
