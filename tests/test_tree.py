"""Declarative trees: a good file starts its tree; a bad one is refused whole, naming file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamrl import Node, TreeError, load_tree, start_tree

GOOD = """
name = "top"
strategy = "one_for_all"
max_restarts = 2
max_seconds = 10

[[children]]
start = "beamrl.testing:Counter"
name = "counter"
args = [5]
restart = "permanent"
shutdown = 2.5

[[children]]
name = "inner"
strategy = "rest_for_one"
shutdown = "infinity"
[[children.children]]
start = "beamrl.testing:Counter"
name = "leaf"
kwargs = { start = 7 }
restart = "transient"
"""


async def test_a_tree_file_starts_the_tree_it_describes(node: Node, tmp_path: Path) -> None:
    path = tmp_path / "tree.toml"
    path.write_text(GOOD)
    top = await start_tree(node, path)
    assert node.whereis("top") == top
    children = await node.which_children("top")
    assert [(c.id, c.kind, c.restart) for c in children] == [
        ("counter", "worker", "permanent"),
        ("inner", "supervisor", "permanent"),
    ]
    assert await node.call("counter", ["get"]) == 5
    assert await node.call("leaf", ["get"]) == 7
    [leaf] = await node.which_children("inner")
    assert leaf.restart == "transient"


def test_the_shipped_trees_load() -> None:
    trees = sorted(Path("supervisors").glob("*.toml"))
    assert trees, "supervisors/ holds at least one tree"
    for path in trees:
        spec = load_tree(path)
        assert spec.args[0], f"{path} has children"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("children = [", r"not valid TOML"),
        ("name = 'x'", r"missing key 'children'"),
        ("strategy = 'best'\n[[children]]\nstart = 'beamrl.testing:Counter'", r"tree\.strategy: expected one_for_one"),
        ("[[children]]\nstart = 'beamrl.testing:Nope'", r"tree\.children\[0\]\.start: module .beamrl.testing. has no"),
        ("[[children]]\nstart = 'no_such_module:X'", r"tree\.children\[0\]\.start: cannot import module"),
        ("[[children]]\nstart = 'beamrl.testing'", r"expected 'module:Class'"),
        ("[[children]]\nstart = 'pathlib:Path'", r"is not a process class"),
        ("[[children]]\nstart = 'beamrl.testing:Counter'\nrestrat = 'permanent'", r"unknown key\(s\) restrat"),
        ("[[children]]\nstart = 'beamrl.testing:Counter'\nrestart = 'often'", r"children\[0\]\.restart: expected"),
        ("[[children]]\nstart = 'beamrl.testing:Counter'\nshutdown = -1", r"shutdown must be seconds"),
        ("[[children]]\nstart = 'beamrl.testing:Counter'\nargs = 5", r"children\[0\]\.args: expected an array"),
        ("[[children]]\nname = 'only a name'", r"children\[0\]: missing key 'start'"),
        ("max_restarts = -1\n[[children]]\nstart = 'beamrl.testing:Counter'", r"max_restarts: expected an integer"),
        (
            "[[children]]\nname='s'\n[[children.children]]\nstart='beamrl.testing:Counter'\nrestart='x'",
            r"tree\.children\[0\]\.children\[0\]\.restart",
        ),
    ],
)
async def test_a_bad_tree_file_is_refused_and_nothing_starts(
    node: Node, tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TreeError, match=problem) as info:
        await start_tree(node, path)
    assert str(path) in str(info.value)
    assert node.processes() == []


async def test_a_missing_tree_file_is_named(node: Node, tmp_path: Path) -> None:
    with pytest.raises(TreeError, match=r"no such file"):
        await start_tree(node, tmp_path / "absent.toml")


def test_the_shipped_node_role_files_load() -> None:
    from beamrl.node_config import load_node_file

    roles = sorted(Path("nodes").glob("*.toml"))
    assert {p.name for p in roles} >= {"learner.toml", "actor.toml"}
    for path in roles:
        config = load_node_file(path)
        assert config.name and config.listen.startswith("tcp://")
        assert config.keys, f"{path} listens beyond loopback, so it names a key directory"
        if config.tree is not None:
            load_tree(config.tree)


def test_a_bad_node_role_file_names_file_key_and_problem(tmp_path: Path) -> None:
    from beamrl.node_config import load_node_file

    path = tmp_path / "role.toml"
    for text, problem in [
        ("nmae = 'x'", r"unknown key 'nmae'"),
        ("join = 'tcp://a:1'", r"join: expected a list"),
        ("join = ['udp://a:1']", r"join: expected a list of 'tcp://host:port'"),
        ("heartbeat_timeout = 0.1", r"heartbeat_timeout must be longer"),
        ("insecure = 'yes'", r"insecure: expected true or false"),
    ]:
        path.write_text(text)
        with pytest.raises(TreeError, match=problem) as info:
            load_node_file(path)
        assert str(path) in str(info.value)


def test_a_tree_imports_its_classes_from_its_pythonpath_relative_to_the_file(tmp_path: Path) -> None:
    import sys

    project = tmp_path / "project"
    (project / "mine").mkdir(parents=True)
    (project / "mine" / "__init__.py").write_text("")
    (project / "mine" / "procs.py").write_text(
        "from beamrl import GenServer\n\nclass Here(GenServer):\n    async def init(self, n=0):\n        self.n = n\n"
    )
    tree = project / "trees" / "t.toml"
    tree.parent.mkdir()
    tree.write_text('pythonpath = [".."]\n[[children]]\nstart = "mine.procs:Here"\nkwargs = { n = 3 }\n')
    try:
        spec = load_tree(tree)
    finally:
        sys.path.remove(str(project))
    assert spec.args[0][0].kwargs == {"n": 3}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('pythonpath = "src"\n', r"pythonpath: expected a list of folders relative to the file"),
        ('pythonpath = ["nowhere"]\n', r"pythonpath: 'nowhere' is no folder"),
        (
            '[[children]]\nstart = "beamrl.testing:Counter"\nname = "c"\nkwargs = { strat = 1 }\n',
            r"children\[0\] \(c\)",
        ),
        ('[[children]]\nstart = "beamrl.testing:Counter"\nargs = [1, 2, 3, 4, 5]\n', r"Counter\.init too many"),
    ],
)
def test_a_bad_pythonpath_or_init_arguments_are_refused_naming_file_and_child(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text + ('[[children]]\nstart = "beamrl.testing:Counter"\n' if "children" not in text else ""))
    with pytest.raises(TreeError, match=problem) as info:
        load_tree(path)
    assert str(path) in str(info.value)


def test_a_packaged_tree_is_found_by_name_and_an_unknown_name_lists_the_shipped_ones() -> None:
    assert load_tree("actor_node") == load_tree("actor_node.toml")
    shipped = r"nosuch: no such file \(nor a tree beamrl ships: actor_node, learner_replica\)"
    with pytest.raises(TreeError, match=shipped):
        load_tree("nosuch")


def test_a_role_files_paths_are_relative_to_it_and_a_bare_tree_is_a_packaged_name(tmp_path: Path) -> None:
    from beamrl.node_config import load_node_file

    role = tmp_path / "nodes" / "role.toml"
    role.parent.mkdir()
    role.write_text('keys = "../keys"\ndata_dir = "state"\ntree = "actor_node"\n')
    config = load_node_file(role)
    assert Path(config.keys or "").resolve() == tmp_path.resolve() / "keys"
    assert Path(config.data_dir or "").resolve() == tmp_path.resolve() / "nodes" / "state"
    assert config.tree == "actor_node"
    role.write_text('tree = "../trees/mine.toml"\n')
    assert Path(load_node_file(role).tree or "").resolve() == tmp_path.resolve() / "trees" / "mine.toml"
