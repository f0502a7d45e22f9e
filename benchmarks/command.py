"""What every benchmark command shares: its common options, the machine it ran on, the
header of its section and the Markdown document it rewrites.

Each command (``python -m benchmarks.<name>``) prints its section and, unless told
``--no-doc``, replaces that section of a document (``docs/benchmarks.md`` or
``docs/reliability.md``), keeping every other section and the hand-written text.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from features.atomic import write_text

CACHE_DIR = Path("data/generated")
DOC_PATH = Path("docs/benchmarks.md")
DEFAULT_SEED = 7


# --- The machine -----------------------------------------------------------------------------


@dataclass
class Machine:
    """Where the figures were measured."""

    cores: int
    memory_gb: float
    cpu: str
    python: str
    system: str
    #: 1-minute load average when the run started: other work on the machine slows the figures.
    load_average: float = float("nan")

    def describe(self) -> str:
        return (
            f"{self.cores} cores ({self.cpu}), {self.memory_gb:.1f} GB RAM, Python {self.python}, {self.system}; "
            f"load average {self.load_average:.1f} at start"
        )


def _proc_field(path: str, key: str) -> str | None:
    """The value of the first ``key: value`` line of a /proc file (None off Linux)."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        return None
    return None


def machine() -> Machine:
    """Cores, memory and CPU of this machine."""
    total_kb = _proc_field("/proc/meminfo", "MemTotal")
    memory_gb = float(total_kb.split()[0]) / 1024**2 if total_kb else float("nan")
    return Machine(
        cores=os.cpu_count() or 1,
        memory_gb=memory_gb,
        cpu=_proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown CPU",
        python=platform.python_version(),
        system=f"{platform.system()} {platform.release()}",
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    )


def utc_now() -> str:
    """Now, as every section dates its figures."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def stamp() -> tuple[Machine, str]:
    """The machine and the UTC time, taken before the work so the load average is the
    machine's own, not the benchmark's."""
    return machine(), utc_now()


def say(message: str) -> None:
    """Progress, on stderr: stdout is the report."""
    print(message, file=sys.stderr, flush=True)


# --- The document ----------------------------------------------------------------------------


def header(title: str, host: Machine, when: str, command: str, machine_note: str = "") -> list[str]:
    """The first lines of a section: where, when and with which command it was measured;
    ``machine_note`` continues the machine line (e.g. the load average at the end)."""
    return [f"## {title}", "", f"- Machine: {host.describe()}{machine_note}", f"- Date: {when}",
            f"- Command: `{command}`", ""]


def update_doc(path: Path, sections: dict[str, str], title: str = "# Benchmarks") -> None:
    """Replace (or append) the ``## <title>`` sections of ``path``, keeping the rest;
    a new document starts with ``title``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else f"{title}\n\n"
    blocks = _split_sections(text)
    for name, body in sections.items():
        blocks[name] = body.rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text("\n".join(b.rstrip("\n") + "\n" for b in blocks.values()), path)


def _split_sections(text: str) -> dict[str, str]:
    """Preamble (key "") and each ``## `` section by title, in order."""
    blocks: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            blocks[current] = []
        blocks[current].append(line)
    return {name: "\n".join(lines) + "\n" for name, lines in blocks.items()}


# --- The command line ------------------------------------------------------------------------


def bench_parser(
    module: str,
    description: str | None,
    *,
    doc: Path = DOC_PATH,
    cache_dir: Path = CACHE_DIR,
    cache_help: str = "demo worlds and trained champions",
    seed_help: str = "demo world seed",
) -> argparse.ArgumentParser:
    """A parser for ``python -m <module>`` with the options every benchmark has
    (``--seed``, ``--cache-dir``, ``--doc``, ``--no-doc``); the caller adds its own."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=(description or "").split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=seed_help)
    parser.add_argument("--cache-dir", type=Path, default=cache_dir, help=cache_help)
    parser.add_argument("--doc", type=Path, default=doc, help="Markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    return parser


def command_line(module: str, argv: Sequence[str]) -> str:
    """The command as a reader re-runs it, written into the section."""
    return shlex.join(["python", "-m", module, *argv])


def publish(
    args: argparse.Namespace,
    sections: dict[str, str],
    write: Callable[[Path, dict[str, str]], None] = update_doc,
) -> None:
    """Print the sections and, unless ``--no-doc``, write them into ``args.doc``."""
    for body in sections.values():
        print(body)
    if not args.no_doc:
        write(args.doc, sections)
        print(f"written to {args.doc}")
