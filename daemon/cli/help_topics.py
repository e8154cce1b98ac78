"""``batchd help TOPIC``: the explanations that belong to no single command's --help."""

from __future__ import annotations

import argparse

_FOLDERS = """Folders under the root (--root, or `root` in the config file):
  pending_upload/   you drop *.jsonl request files here (rename them into place); a subfolder NAME/ runs
                    them on provider profile NAME
  batch_results/    batchd writes NAME/results.jsonl (input order), summary.json and the raw files
  uploaded_files/   inputs whose results are written (an archive)
  failed/           inputs that cannot succeed as they are, each with NAME.report.txt;
                    fix one and run `batchd retry NAME`
  state/            the state database, the lock, in-flight copies (do not edit)
`batchd run` creates the root if its parent folder exists, and every folder in it."""

_METADATA = """Batch metadata: key=value pairs added to every batch batchd creates (shown in the OpenAI
dashboard and in `batchd status --json`), besides the five batchd_* pairs batchd uses itself.
  config file:  [metadata]
                team = "search"
                cost_centre = "cc-42"
  environment:  BATCHD_METADATA="team=search,cost_centre=cc-42"   (replaces the file's table)
At most 11 pairs; keys 1-64 characters, not starting with batchd_; values at most 512 characters.
A wrong pair stops batchd at start (exit 2) with a message naming it."""

_SHARED_RESULTS = """Shared set-ups: let the people who drop files read their results.
  results_group = "batchd"   batch_results/ and failed/, and each job's results folder once complete
                             (with everything in it), get this group
  results_mode = "0750"      the mode of those folders; files get it without the execute bits (0640)
batchd checks at start that the group exists and that it may use it (it is one of the daemon user's
groups); a wrong value exits 2. Under systemd, keep UMask=0077 for everything else: these two keys
set the results' group and mode explicitly. In a container, set BATCHD_RESULTS_GROUP to a group id
(numeric) that the readers on the host share, and BATCHD_RESULTS_MODE."""

_SPLIT_BY_MODEL = """Several models in one file: split_by_model (off by default).
A batch runs one model, so an input whose lines name several is refused; its report in failed/ names
the lines. With split_by_model = true each model's lines go in batches of their own (one or more per
model, as the limits say; up to 64 models an input), each waits for its own model's enqueued-token
limit, and results.jsonl still lists every request in input order. An input of one model is split
exactly as without the setting.
  config file:  split_by_model = true   at the top level, above the first [table]: every profile
                [providers.NAME]
                split_by_model = true   that profile's own (a key below a table's header is that table's)
  environment:  BATCHD_SPLIT_BY_MODEL=true
  make demo:    take the # off its line in config/demo.toml
Where the models show: `batchd validate` estimates each model (requests, batches, input tokens, cost
at its price; --json: models); `batchd status` lists them in a MODELS column (gpt-4o-mini+gpt-4o) and
WHY names the model that holds; summary.json's models gives each model's requests, usage,
estimated_cost_usd and price (its model is null, its estimated_cost_usd the sum), and each of its
batches names the model it ran; the web page's job view names them too."""

_COMPLETION = """Shell completion, generated from batchd's own options:
  bash:  batchd completion bash > ~/.local/share/bash-completion/completions/batchd
  zsh:   batchd completion zsh > ~/.zfunc/_batchd   (with fpath=(~/.zfunc $fpath) before compinit)
Open a new shell afterwards."""


def _topics() -> dict[str, str]:
    from daemon.cli.main import EXIT_CODES_TEXT  # noqa: PLC0415 - main imports this module's names lazily too
    from daemon.emulator.cli import EMULATOR_DESCRIPTION  # noqa: PLC0415

    return {
        "exit-codes": EXIT_CODES_TEXT,
        "folders": _FOLDERS,
        "emulator": EMULATOR_DESCRIPTION,
        "metadata": _METADATA,
        "shared-results": _SHARED_RESULTS,
        "split-by-model": _SPLIT_BY_MODEL,
        "completion": _COMPLETION,
    }


TOPICS = ("exit-codes", "folders", "emulator", "metadata", "shared-results", "split-by-model", "completion")


def topic_text(name: str | None, parser: argparse.ArgumentParser) -> str | None:
    """The topic's text, a command's --help, the list of topics (no name), or None (no such topic)."""
    if name is None:
        return (
            "Help topics (`batchd help TOPIC`):\n"
            + "\n".join(f"  {topic}" for topic in TOPICS)
            + ("\nand every command: `batchd help run` is `batchd run --help`.")
        )
    topics = _topics()
    if name in topics:
        return topics[name]
    commands = _commands(parser)
    return commands[name].format_help() if name in commands else None


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
