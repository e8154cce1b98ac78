"""``batchd completion bash|zsh``: shell completion scripts written from the argparse parser itself.

Walking the parser (not a hand-kept list) keeps the scripts in step with every option a command
gains. What an option's value completes to follows from the parser too: its choices, a path for a
``Path`` type (a folder for ``--root``), nothing for numbers and names.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

_DIRECTORY_OPTIONS = frozenset({"--root", "--data-dir"})


@dataclass(frozen=True, slots=True)
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...] = ()
    path: str = ""  # "file", "dir" or "" (not a path)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    positional_choices: tuple[str, ...]
    positional_paths: bool


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    commands = walk_commands(parser)
    return _bash(commands) if shell == "bash" else _zsh(commands)


def walk_commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every subcommand with its options and what its positional arguments complete to."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
    return [_command(name, helps.get(name, ""), p) for name, p in sub.choices.items()]


def _command(name: str, help_text: str, parser: argparse.ArgumentParser) -> Command:
    options, choices, paths = [], [], False
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            options.append(_option(action))
        else:
            choices += [str(c) for c in action.choices or ()]
            paths = paths or action.type is Path
    return Command(name, _short(help_text), tuple(options), tuple(choices), paths)


def _option(action: argparse.Action) -> Option:
    takes_value = action.nargs != 0
    path = ""
    if takes_value and action.type is Path:
        path = "dir" if set(action.option_strings) & _DIRECTORY_OPTIONS else "file"
    return Option(
        tuple(action.option_strings),
        _short(action.help or ""),
        takes_value,
        tuple(str(c) for c in action.choices or ()),
        path,
    )


def _short(text: str) -> str:
    """The first clause of a help text, without %(default)s placeholders: a completion menu line."""
    text = re.sub(r"\s*\((default|e\.g\.)[^)]*\)", "", text.replace("%%", "%"))
    return re.split(r"[;:]\s", text, maxsplit=1)[0].strip()


# bash


def _bash(commands: list[Command]) -> str:
    cases = "\n".join(_bash_case(command) for command in commands)
    names = " ".join(command.name for command in commands)
    return f"""# bash completion for batchd, written by `batchd completion bash`.
# Install: batchd completion bash > ~/.local/share/bash-completion/completions/batchd
_batchd() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" cmd="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            -*) ;;
            *) cmd="${{COMP_WORDS[i]}}"; break ;;
        esac
    done
    if [[ -z "$cmd" ]]; then
        COMPREPLY=($(compgen -W "{names} --help --version" -- "$cur"))
        return
    fi
    case "$cmd" in
{cases}
    esac
}}
complete -o default -F _batchd batchd
"""


def _bash_case(command: Command) -> str:
    values = []
    for option in command.options:
        if not option.takes_value:
            continue
        pattern = "|".join(option.flags)
        if option.choices:
            reply = f'COMPREPLY=($(compgen -W "{" ".join(option.choices)}" -- "$cur"))'
        elif option.path == "dir":
            reply = 'COMPREPLY=($(compgen -d -- "$cur"))'
        elif option.path == "file":
            reply = 'COMPREPLY=($(compgen -f -- "$cur"))'
        else:
            reply = "COMPREPLY=()"  # a number or a name: nothing to offer
        values.append(f"                {pattern}) {reply}; return ;;")
    flags = " ".join(flag for option in command.options for flag in option.flags)
    words = " ".join(command.positional_choices)
    value_case = "\n".join(values)
    positional = f'COMPREPLY=($(compgen -W "{words}" -- "$cur"))' if words else "COMPREPLY=()"
    return f"""        {command.name})
            case "$prev" in
{value_case or "                --) ;;"}
            esac
            if [[ "$cur" == -* ]]; then
                COMPREPLY=($(compgen -W "{flags}" -- "$cur"))
            else
                {positional}
            fi
            ;;"""


# zsh


def _zsh(commands: list[Command]) -> str:
    described = "\n".join(f"        {_zsh_quote(f'{c.name}:{_zsh_escape(c.help)}')}" for c in commands)
    cases = "\n".join(_zsh_case(command) for command in commands)
    return f"""#compdef batchd
# zsh completion for batchd, written by `batchd completion zsh`.
# Install: batchd completion zsh > ~/.zfunc/_batchd, with fpath=(~/.zfunc $fpath) before compinit.
_batchd() {{
    local curcontext="$curcontext" state line
    typeset -A opt_args
    _arguments -C \\
        '(- *)--help[show help and exit]' \\
        '(- *)--version[show the version and exit]' \\
        '1:command:->command' \\
        '*::argument:->argument'
    case $state in
    command)
        local -a commands
        commands=(
{described}
        )
        _describe -t commands 'batchd command' commands
        ;;
    argument)
        case $line[1] in
{cases}
        esac
        ;;
    esac
}}
_batchd "$@"
"""


def _zsh_case(command: Command) -> str:
    specs = [_zsh_option(option) for option in command.options]
    if command.positional_choices:
        specs.append(_zsh_quote(f"*:{command.name} argument:({' '.join(command.positional_choices)})"))
    elif command.positional_paths:
        specs.append(_zsh_quote("*:file:_files"))
    joined = " \\\n                ".join(specs)
    return f"""        {command.name})
            _arguments \\
                {joined}
            ;;"""


def _zsh_option(option: Option) -> str:
    flags = option.flags[0] if len(option.flags) == 1 else "{" + ",".join(option.flags) + "}"
    exclusive = f"({' '.join(option.flags)})" if len(option.flags) > 1 else ""
    spec = f"{exclusive}{flags}[{_zsh_escape(option.help)}]"
    if option.takes_value:
        if option.choices:
            spec += f":value:({' '.join(option.choices)})"
        elif option.path == "dir":
            spec += ":folder:_files -/"
        elif option.path == "file":
            spec += ":file:_files"
        else:
            spec += ":value: "
    return _zsh_quote(spec) if len(option.flags) == 1 else f"'{exclusive}'" + _zsh_brace(option, spec)


def _zsh_brace(option: Option, spec: str) -> str:
    # A brace list must stay outside the quotes for zsh to expand it into one spec per flag.
    rest = spec.removeprefix(f"({' '.join(option.flags)})").removeprefix("{" + ",".join(option.flags) + "}")
    return "{" + ",".join(option.flags) + "}" + _zsh_quote(rest)


def _zsh_escape(text: str) -> str:
    """Text inside a spec's [...] or a _describe entry: brackets and colons would end a field."""
    return re.sub(r"([\[\]:\\])", r"\\\1", text)


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
