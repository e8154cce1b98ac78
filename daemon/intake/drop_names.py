"""Which names in the drop zone are request files, and why any other is left alone.

A request file is ``*.jsonl`` in any letter case (``UPPER.JSONL`` is what some tools write) or
``*.jsonl.gz`` (decompressed at intake, see conversion). A dot-name or a writer's temporary name
(``.tmp``, ``.part``, ``~``, ``.swp``) is a file still being written: left alone, without a word,
as the way to drop a file whole is to write it under such a name and rename it. Any other name
is left alone too, but said once (event ``file_ignored``), so a ``requests.json`` does not sit in
pending_upload/ for ever with no one knowing why.
"""

from __future__ import annotations

IGNORED_SUFFIXES = (".tmp", ".part", "~", ".swp")
REQUEST_SUFFIXES = (".jsonl", ".jsonl.gz")
GZIP_SUFFIX = ".gz"


def is_request_file(name: str) -> bool:
    return name.lower().endswith(REQUEST_SUFFIXES) and not is_being_written(name)


def is_being_written(name: str) -> bool:
    """A dot-name or a temporary name: a file its writer has not handed over yet."""
    return name.startswith(".") or name.endswith(IGNORED_SUFFIXES)


def is_compressed(name: str) -> bool:
    return name.lower().endswith(GZIP_SUFFIX)


def request_stem(name: str) -> str:
    """The name without its request suffix (``a.JSONL`` -> ``a``, ``b.jsonl.gz`` -> ``b``)."""
    for suffix in sorted(REQUEST_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def jsonl_name(name: str) -> str:
    """The name a JSON Lines file made from ``name`` should have to be taken from the drop zone
    (``tasks.json`` -> ``tasks.jsonl``); a request file's name is kept."""
    if is_request_file(name) or is_being_written(name):
        return name
    return (name[:-5] if name.lower().endswith(".json") else name) + ".jsonl"


def ignored_reason(name: str, is_folder: bool) -> str:
    """Why a name in the drop zone is not taken, and what to do about it."""
    if is_folder:
        return "it is a folder; drop request files directly into pending_upload/ (or a profile's folder)"
    lower = name.lower()
    if lower.endswith(".json"):
        return (
            "only *.jsonl and *.jsonl.gz files are taken; if it is JSON Lines rename it to .jsonl, if it is one "
            f"JSON array run `batchd wrap {name} -o {name[:-5]}.jsonl`"
        )
    if lower.endswith(".gz"):
        return "only *.jsonl.gz of the compressed files is taken; recompress the JSON Lines file as NAME.jsonl.gz"
    return "only *.jsonl (any letter case) and *.jsonl.gz files are taken; batchd leaves it where it is"
