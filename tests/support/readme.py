"""The code blocks of the README and docs/*.md, and the `escalator` commands in them.

Conventions a block's author can use, as HTML comments on the lines right before the fence
(GitHub does not show them):

- `<!-- not run: why -->`: tests/integration/test_readme.py does not execute the block (it
  installs, needs the internet or Docker, names placeholders...); its `escalator` commands are
  still parsed against the CLI by tests/unit/test_doc_commands.py.
- `<!-- expect: text -->` (repeatable): the block's output must contain `text`.
"""

from __future__ import annotations

import io
import re
import shlex
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import typer.main

from worker.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*(not run|expect):\s*(.*?)\s*-->\s*$")
SHELL = frozenset({"sh", "bash", "console", "shell"})
PLACEHOLDER = re.compile(r"<[^<>]*>|\[\.\.\.\]|\.\.\.")  # <pid of ...>, [...], msg_...


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and the directives on it."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    not_run: str | None  # the reason given by `<!-- not run: ... -->`
    expect: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order, with the directives right above it."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    n = 0
    while n < len(lines):
        opening = FENCE.match(lines[n])
        if opening is None:
            n += 1
            continue
        end = next(k for k in range(n + 1, len(lines)) if lines[k].startswith("```"))
        not_run: str | None = None
        expect: list[str] = []
        k = n - 1
        while k >= 0 and (directive := DIRECTIVE.match(lines[k])):
            if directive.group(1) == "not run":
                not_run = directive.group(2)
            else:
                expect.insert(0, directive.group(2))
            k -= 1
        text = "\n".join(lines[n + 1 : end]) + "\n"
        found.append(Block(path, n + 1, opening.group(1), text, not_run, tuple(expect)))
        n = end + 1
    return found


def shell_lines(text: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, `$ ` prompts stripped; in a
    `console` block only the prompted lines are commands (the rest is their output)."""
    commands: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        commands.append(line[2:] if line.startswith("$ ") else line)
    return [c for c in commands if c.strip() and not c.lstrip().startswith("#")]


def escalator_argv(text: str) -> list[list[str]]:
    """The arguments of every `escalator ...` command in a shell block (also after `docker
    compose exec api`), with comments dropped, placeholders turned into a plain word and
    `[--optional flags]` unbracketed, so that only what the CLI would parse is left."""
    found: list[list[str]] = []
    for line in shell_lines(text):
        words = _words(line)
        for n, word in enumerate(words):
            if (word == "escalator" or word.endswith("/bin/escalator")) and (
                n == 0 or words[n - 1] in ("api", "exec")
            ):
                argv = []
                for arg in words[n + 1 :]:
                    if arg in ("|", "||", "&&", ";", ">", ">>", "<", "2>&1", "&"):
                        break
                    argv.append(arg)
                found.append(argv)
                break
    return found


def _words(line: str) -> list[str]:
    """A command line as the shell would split it, roughly: `$(...)` kept as one word."""
    line = re.sub(r"\$\([^)]*\)", "SUBST", line)
    line = line.replace("[", " ").replace("]", " ")
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:  # an unbalanced quote in prose-like text: not a command
        return []
    return ["x" if PLACEHOLDER.fullmatch(w) else w for w in words]


def cli_problem(argv: list[str]) -> str | None:
    """Why `escalator ARGV` would not parse (an unknown command or flag, a bad choice, a
    missing argument), or None: the real typer app parses the arguments, nothing runs."""
    command: Any = typer.main.get_command(app)
    name = "escalator"
    args = list(argv)
    try:
        while True:
            with redirect_stdout(io.StringIO()):  # --help prints
                ctx = command.make_context(name, list(args))
            rest = [*getattr(ctx, "_protected_args", ()), *ctx.args]
            if not hasattr(command, "resolve_command") or not rest:
                return None
            sub_name, sub, args = command.resolve_command(ctx, rest)
            if sub is None:
                return f"escalator {shlex.join(argv)}: no command {sub_name!r}"
            name, command = f"{name} {sub_name}", sub
    except typer.Exit:  # --help, --version
        return None
    except Exception as exc:  # typer's own click: UsageError, BadParameter, NoSuchOption
        if not hasattr(exc, "format_message"):
            raise
        return f"escalator {shlex.join(argv)}: {exc.format_message()}"
