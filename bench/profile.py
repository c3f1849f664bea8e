"""`--profile`: record coscribe with py-spy during a scenario's measured phase, and sum it up.

py-spy (in bench/.venv-tools) attaches to the running server by pid and writes collapsed
stacks (`--format raw`: one line `frame;frame;...;leaf COUNT` per distinct stack, frames as
`function (file)` with `--nolineno`). Those files can be opened in speedscope or turned into
a flame graph.

py-spy runs with `--gil`: it samples only the thread holding the GIL, so idle threads (the
thread pool's workers waiting for work, the event loop waiting in epoll) are not counted, and
neither is native code that released the GIL (SQLite and psycopg waiting on I/O). Percentages
are of those samples: 40 % means "40 % of the time the server was running Python code (or
native code called from it while holding the GIL)", not 40 % of the wall clock.

The total-time list leaves out the frames every stack starts with (ENTRY_FRAMES: runpy,
click, coscribe's CLI and runner, uvicorn's and asyncio's run, the thread bootstrap): they
would fill it with the same 100 % lines.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

from bench import log
from bench.servers import pinned, py_spy

RATE_HZ = 100
ENTRY_FRAMES = (
    "(<frozen runpy>)",
    "(click/",
    "(server/cli.py)",
    "(server/commands/",
    "(server/runner.py)",
    "(uvicorn/_compat.py)",
    "(uvicorn/server.py)",
    "(asyncio/runners.py)",
    "(threading.py)",
    "(concurrent/futures/thread.py)",
)


def start(pid: int, output: Path, cpu: int | None) -> subprocess.Popen[bytes]:
    """py-spy record on `pid` until stop(); it pauses the target briefly for each sample."""
    cmd = [str(py_spy()), "record", "--pid", str(pid), "--format", "raw", "--nolineno", "--gil"]
    cmd += ["--rate", str(RATE_HZ), "--output", str(output)]
    log_path = output.with_suffix(".log")
    with log_path.open("wb") as out:
        return subprocess.Popen(
            pinned(cmd, cpu), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


def stop(proc: subprocess.Popen[bytes], output: Path) -> bool:
    """SIGINT (py-spy then writes its output), wait; True when the output file is there."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not output.exists():
        log_path = output.with_suffix(".log")
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        log(f"  py-spy wrote no profile ({proc.returncode}): {text.strip()[-400:]}")
        return False
    return True


def read_folded(paths: list[Path]) -> tuple[Counter[str], Counter[str], int]:
    """Self samples and total samples per function, and the number of samples, over files."""
    self_samples: Counter[str] = Counter()
    total_samples: Counter[str] = Counter()
    samples = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [f for f in stack.split(";") if f]
            if not frames:
                continue
            samples += count
            self_samples[frames[-1]] += count
            for frame in set(frames):  # recursion counts a function once per sample
                total_samples[frame] += count
    return self_samples, total_samples, samples


def top_table(paths: list[Path], n: int = 15) -> str:
    """Markdown: the top `n` functions by self time and by total time, in percent."""
    self_samples, total_samples, samples = read_folded(paths)
    if not samples:
        return "(no samples)"
    out = [
        f"{samples:,} samples (threads holding the GIL) at {RATE_HZ} Hz over {len(paths)} "
        "recording(s); the total-time list leaves out the entry frames (runpy, click, the "
        "CLI, uvicorn's and asyncio's run, thread bootstrap).",
        "",
    ]
    inner = Counter(
        {f: c for f, c in total_samples.items() if not any(e in f for e in ENTRY_FRAMES)}
    )
    for title, counter in (("self time", self_samples), ("total time", inner)):
        out += [f"Top {n} by {title}:", "", "| % | function |", "|---:|---|"]
        for frame, count in counter.most_common(n):
            out.append(f"| {100 * count / samples:.1f} | `{frame.replace('|', '/')}` |")
        out.append("")
    return "\n".join(out)
