"""Puts the tables `make bench` wrote to target/bench/ into docs/benchmarks.md, between its `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->` markers, and stamps the run's date and machine. Prose outside the markers is left alone."""

import datetime
import os
import pathlib
import platform
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs/benchmarks.md"
RESULTS = ROOT / "target/bench"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
        memory = f"{kib / 1048576:.0f} GiB"
    except OSError:
        memory = "unknown memory"
    return f"{os.cpu_count()} cores ({cpu}), {memory}, {platform.system()} {platform.release()}"


def main() -> int:
    tables = {p.stem: p.read_text().strip() for p in RESULTS.glob("*.md")}
    if not tables:
        print(f"no results in {RESULTS}: run make bench", file=sys.stderr)
        return 1
    wanted = set(re.findall(r"<!-- bench:(\w+) -->", DOC.read_text())) - {"machine"}
    if wanted <= set(tables):
        tables["machine"] = f"Last `make bench`: {datetime.date.today().isoformat()}, on {machine()}."
    else:
        # One benchmark run alone (bench/vm_downtime.py): its table says when and where; the full run's date stays.
        print("a partial run: the date and machine of the last full `make bench` are kept", file=sys.stderr)
    missing = []

    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name not in tables:
            if name != "machine":
                missing.append(name)
            return m.group(0)
        return f"<!-- bench:{name} -->\n{tables[name]}\n<!-- /bench:{name} -->"

    text = re.sub(r"<!-- bench:([\w-]+) -->.*?<!-- /bench:\1 -->", fill, DOC.read_text(), flags=re.S)
    DOC.write_text(text)
    if missing:
        print("not measured in this run, left as they were: " + ", ".join(missing), file=sys.stderr)
    print(f"wrote {DOC.relative_to(ROOT)} ({len(set(tables) - {'machine'})} tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
