"""beamrl: Erlang/OTP's process model for reinforcement learning.

Processes (GenServers, supervisors, environments, learners) run on a ``Node``
and talk by messages; supervisors restart what crashes; nodes connect over
ZeroMQ so the same tree spans processes and machines.
"""

from beamrl.api import (
    call,
    cancel_timer,
    cast,
    current,
    demonitor,
    exit,
    kill,
    link,
    monitor,
    proxy,
    register,
    reply,
    self_pid,
    send,
    send_after,
    spawn,
    start,
    start_link,
    stop,
    unlink,
    whereis,
)
from beamrl.errors import (
    AlreadyRegistered,
    Backpressure,
    BeamError,
    CallSelf,
    CallTimeout,
    CodecError,
    NodeDown,
    NoProc,
    NotInProcess,
    ProcessCrashed,
    Rejected,
    RemoteError,
    StartRefused,
)
from beamrl.gen_server import GenServer, Ignore, NoReply, Reply, Stop
from beamrl.node import Node, run
from beamrl.pid import Pid, Ref
from beamrl.process import Down, Exit, From
from beamrl.proxy import Proxy
from beamrl.session import Session, SyncProxy, connect
from beamrl.supervisor import ChildInfo, ChildSpec, DynamicSupervisor, Supervisor, child
from beamrl.task import receive
from beamrl.tree import TreeError, load_tree, start_tree

__version__ = "0.1.0"

__all__ = [
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
    "NoProc",
    "NoReply",
    "Node",
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
