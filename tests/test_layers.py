"""The package's shape: no import cycles, a leaf codec, optional heavy parts stay optional.

The layer contracts themselves are import-linter's (``lint-imports``, pyproject.toml).
"""

from __future__ import annotations

import subprocess
import sys

import grimp

# cycles that exist on purpose until their owner removes them; an entry that no longer
# exists fails the test, so the list only shrinks
KNOWN_CYCLES: set[frozenset[str]] = set()


def _cycles(graph: grimp.ImportGraph) -> set[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.add(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.add(frozenset(component))
    return found


def test_the_package_has_no_import_cycles() -> None:
    graph = grimp.build_graph("beamrl", exclude_type_checking_imports=True)
    cycles = _cycles(graph)
    new = cycles - KNOWN_CYCLES
    assert not new, f"import cycles: {[sorted(c) for c in new]}"
    gone = KNOWN_CYCLES - cycles
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {[sorted(c) for c in gone]}"


def test_the_cycle_finder_finds_cycles() -> None:
    graph = grimp.ImportGraph()
    for m in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(m)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.y", imported="a.z")
    assert _cycles(graph) == {frozenset({"a.x", "a.y"})}


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


def test_the_codec_is_a_leaf() -> None:
    graph = grimp.build_graph("beamrl")  # TYPE_CHECKING imports included: not even for types
    above = {m for m in graph.find_upstream_modules("beamrl.codec", as_package=True) if m.startswith("beamrl")}
    assert above == set(), f"the codec imports {sorted(above)}"


def test_importing_beamrl_and_rl_loads_no_optional_heavy_dependency() -> None:
    loaded = _loaded_after("import beamrl, beamrl.rl")
    assert not {"torch", "gymnasium", "matplotlib", "aiohttp", "tensorboard", "zmq.auth.thread"} & loaded
