#!/usr/bin/env python3
"""Finds import circles: between crates (from their Cargo.toml dependencies) and
between the modules of each crate (from `crate::module` paths in its sources; the
crate root, which declares and re-exports its modules, is left out).

Exits 1 and prints each circle found; prints the layering when there are none.
Usage: scripts/check-cycles.py   (from anywhere; reads crates/ beside this script)
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "crates"


def cycles(graph):
    """Every elementary circle, each reported once (Tarjan's SCCs, then one path each)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def crate_graph():
    graph = {}
    for toml in ROOT.glob("*/Cargo.toml"):
        name = toml.parent.name
        text = toml.read_text()
        deps = text.split("[dependencies]", 1)[1].split("\n[", 1)[0] if "[dependencies]" in text else ""
        graph[name] = set(re.findall(r"^(slipway-[a-z-]+)", deps, re.M))
    return graph


def module_graph(src):
    modules = {p.stem: p for p in src.glob("*.rs") if p.stem not in ("lib", "main")}
    for d in src.iterdir():
        if d.is_dir() and (d / "mod.rs").exists():
            modules[d.name] = d / "mod.rs"
    graph = {}
    for name, path in modules.items():
        files = [path] + (list(path.parent.glob("*.rs")) if path.name == "mod.rs" else [])
        sub = src / name
        if sub.is_dir():
            files += list(sub.rglob("*.rs"))
        text = "\n".join(f.read_text() for f in files)
        used = set(re.findall(r"crate::([a-z_]+)", text))
        for group in re.findall(r"use crate::\{([^}]*)\}", text):
            used |= {w.split("::")[0].strip() for w in group.split(",")}
        graph[name] = {m for m in used if m in modules and m != name}
    return graph


def main():
    found = []
    graph = crate_graph()
    for circle in cycles(graph):
        found.append("crates: " + " <-> ".join(circle))
    for crate in sorted(ROOT.iterdir()):
        src = crate / "src"
        if src.is_dir():
            for circle in cycles(module_graph(src)):
                found.append(f"{crate.name}: modules " + " <-> ".join(circle))
    if found:
        print("import circles:\n  " + "\n  ".join(found))
        return 1
    print(f"no import circles among {len(graph)} crates and their modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
