"""The public namespace is a contract: changing it must be a decision, not an accident."""

import beamrl

EXPECTED = [
    "AlreadyRegistered",
    "Backpressure",
    "BeamError",
    "CallSelf",
    "CallTimeout",
    "ChildInfo",
    "ChildSpec",
    "CodecError",
    "Down",
    "DynamicSupervisor",
    "Exit",
    "From",
    "GenServer",
    "Ignore",
    "Node",
    "NoProc",
    "NoReply",
    "NodeDown",
    "NotInProcess",
    "Pid",
    "ProcessCrashed",
    "Proxy",
    "Ref",
    "Rejected",
    "RemoteError",
    "Reply",
    "Session",
    "StartRefused",
    "Stop",
    "Supervisor",
    "SyncProxy",
    "TreeError",
    "__version__",
    "call",
    "cancel_timer",
    "cast",
    "child",
    "connect",
    "current",
    "demonitor",
    "exit",
    "kill",
    "link",
    "load_tree",
    "monitor",
    "proxy",
    "receive",
    "register",
    "reply",
    "run",
    "self_pid",
    "send",
    "send_after",
    "spawn",
    "start",
    "start_link",
    "start_tree",
    "stop",
    "unlink",
    "whereis",
]


def test_all_is_pinned() -> None:
    assert sorted(beamrl.__all__) == sorted(EXPECTED)


def test_every_public_name_exists() -> None:
    missing = [name for name in beamrl.__all__ if not hasattr(beamrl, name)]
    assert missing == []


def test_errors_have_the_documented_bases() -> None:
    assert issubclass(beamrl.CallTimeout, TimeoutError)
    for name in ("CallTimeout", "NoProc", "ProcessCrashed", "Rejected", "NodeDown"):
        assert issubclass(getattr(beamrl, name), beamrl.BeamError)
