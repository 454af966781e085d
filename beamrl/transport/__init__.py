"""Node-to-node transports.  Only this package imports zmq.

``ZmqTransport`` carries frames between nodes over ZeroMQ (see ``zmq_transport``);
``keys`` manages CURVE key directories.
"""

from beamrl.transport.base import PeerInfo, Transport, TransportHandler, TransportOptions
from beamrl.transport.keys import KeyFileError, generate_keys, load_keypair, trusted_keys
from beamrl.transport.zmq_transport import PROTOCOL_VERSION, ZmqTransport

__all__ = [
    "PROTOCOL_VERSION",
    "KeyFileError",
    "PeerInfo",
    "Transport",
    "TransportHandler",
    "TransportOptions",
    "ZmqTransport",
    "generate_keys",
    "load_keypair",
    "trusted_keys",
]
