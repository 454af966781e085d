"""GenServer: a process that serves requests, one at a time, with OTP's semantics.

API call -> callback it triggers::

    node.start(Cls, *args, **kw)   -> init(*args, **kw)         before start() returns
    node.call(pid, request)        -> handle_call(request, from_)
    node.cast(pid, request)        -> handle_cast(request)
    node.send(pid, message)        -> handle_info(message)      also Down, Exit, timers, "timeout"
    self.continue_with(arg)        -> handle_continue(arg)      before the next message (chains too)
    node.stop(pid, reason)         -> terminate(reason)         also after a crash, never after kill

What each callback may return:

``init``
    ``None``: started; ``start`` returns the pid. Raising fails ``start`` with
    that error. ``Stop(reason)``: do not start (``terminate`` does not run);
    the process exits with ``reason`` and ``start`` raises ``StartRefused``
    (a ``NoProc``) whose ``.reason`` is ``reason``; as in OTP, a linked
    starter that does not trap exits is taken along unless ``reason`` is
    ``"normal"``. ``Ignore``: nothing to run; the process exits ``normal``,
    ``start`` returns None, no crash report, linked processes are unaffected
    and a supervisor keeps no running child for it.
``handle_call``
    any value: the reply. ``Reply(value)``: the same, spelled out.
    ``NoReply`` (or ``NoReply()``): no reply now; someone answers later with
    ``beamrl.reply(from_, value)``, from any process. ``Stop(reason, reply=v)``:
    reply ``v`` (if given), then stop. Raising ``Rejected``: the caller gets the
    ``Rejected``, the server keeps going. Raising anything else: crash; the
    caller gets ``ProcessCrashed``, the supervisor restarts the server.
``handle_cast`` / ``handle_info`` / ``handle_continue``
    ``None`` to go on, ``Stop(reason)`` to stop.
``terminate``
    the return value is ignored; an error in it is logged.

Idle timeout: set ``self.idle_timeout = seconds`` (in ``init`` or any callback);
when the mailbox stays empty that long, ``handle_info("timeout")`` runs. Set it
back to ``None`` to switch it off.

Exit signals: with ``self.trap_exit = True`` exits of linked processes arrive
as ``beamrl.Exit`` messages; an ``Exit`` from the parent (the supervisor that
started it) stops the server with that reason, running ``terminate``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from beamrl.errors import Rejected, StartRefused
from beamrl.pid import Pid
from beamrl.process import _TIMEOUT, CALL, CAST, INFO, NORMAL, SYSTEM, Exit, From, Process, format_reason
from beamrl.reprs import short_repr

log = logging.getLogger("beamrl")


class Reply:
    """``handle_call``'s explicit reply: ``return Reply(value)``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class NoReply:
    """``handle_call`` answers later with ``beamrl.reply(from_, value)``: ``return NoReply``."""

    __slots__ = ()


class Ignore:
    """``init`` has nothing to run: ``return Ignore``. The process exits ``normal``; ``start`` returns None."""

    __slots__ = ()


class Stop:
    """Stop the server with ``reason`` (after replying ``reply`` when handling a call)."""

    __slots__ = ("reason", "reply")
    _NO_REPLY: Any = object()

    def __init__(self, reason: Any = NORMAL, reply: Any = _NO_REPLY) -> None:
        self.reason = reason
        self.reply = reply


_NOTHING = object()


class GenServer(Process):
    """Subclass it and override the callbacks you need.

    The loop that drives it, in short::

        await init(*args)                # Stop(reason) / Ignore: start fails / returns None
        while running:
            while continue pending: await handle_continue(arg)   # may ask for the next one
            message = next in mailbox (or "timeout" after idle_timeout)
            dispatch to handle_call / handle_cast / handle_info
        await terminate(reason)      # graceful stop or crash, not kill
    """

    idle_timeout: float | None = None
    _handles_system = True
    _continue: Any = _NOTHING

    # -- callbacks (override) ---------------------------------------------------------

    async def init(self, *args: Any, **kwargs: Any) -> Any:
        """Set up the state; runs before ``start`` returns."""
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__} got start arguments {args!r} {kwargs!r} but defines no init() to take them"
            )

    async def handle_call(self, request: Any, from_: From) -> Any:
        """Answer a ``call``; the return value is the reply."""
        raise Rejected(f"{type(self).__name__} does not handle calls (got {short_repr(request)})")

    async def handle_cast(self, request: Any) -> Any:
        """Handle a ``cast`` (no reply)."""
        log.warning("%s got a cast it does not handle: %s", self, short_repr(request))

    async def handle_info(self, message: Any) -> Any:
        """Handle any other message: ``send``, ``Down``, ``Exit``, timers, ``"timeout"``."""
        log.debug("%s ignored message %s", self, short_repr(message))

    async def handle_continue(self, arg: Any) -> Any:
        """Runs after the callback that asked for it with ``continue_with(arg)``."""
        raise NotImplementedError(f"{type(self).__name__} asked to continue with {arg!r} but has no handle_continue")

    async def terminate(self, reason: Any) -> None:
        """Last words before exiting (graceful stop or crash; never after kill)."""

    # -- helpers usable from callbacks ----------------------------------------------------

    def continue_with(self, arg: Any) -> None:
        """Run ``handle_continue(arg)`` right after the current callback, before any message."""
        self._continue = arg

    # -- the loop -----------------------------------------------------------------------

    async def _main(self, args: tuple[Any, ...], kwargs: dict[str, Any], started: asyncio.Future[Pid | None]) -> Any:
        result = await self.init(*args, **kwargs)
        if started.done():  # the starter gave up: see Node.start
            return NORMAL
        if result is Ignore or type(result) is Ignore:
            started.set_result(None)
            return NORMAL
        if type(result) is Stop:
            reason = result.reason
            message = f"{type(self).__name__}.init refused to start: {format_reason(reason)}"
            started.set_exception(StartRefused(message, reason))
            return reason  # the exit reason, for links and monitors, as OTP's {stop, Reason}
        started.set_result(self.pid)
        return await self._serve()

    async def _serve(self) -> Any:
        reason: Any
        try:
            reason = await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._terminate(exc)
            raise
        await self._terminate(reason)
        return reason

    async def _terminate(self, reason: Any) -> None:
        try:
            await self.terminate(reason)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: terminate(%s) raised", self, format_reason(reason))

    async def _loop(self) -> Any:
        node = self.node
        mailbox = self._mailbox
        while True:
            while self._continue is not _NOTHING:  # a continue may ask for the next one
                arg = self._continue
                self._continue = _NOTHING
                result = await self.handle_continue(arg)
                if type(result) is Stop:
                    return result.reason
            if mailbox:
                item = mailbox.popleft()
            else:
                item = await self._receive(self.idle_timeout)
                if item is _TIMEOUT:
                    result = await self.handle_info("timeout")
                    if type(result) is Stop:
                        return result.reason
                    continue
            self._handled += 1  # messages handled per second
            kind = item[0]
            if kind == CALL:
                from_ = item[2]
                try:
                    result = await self.handle_call(item[1], from_)
                except Rejected as exc:
                    self._inbound.discard(from_)
                    node._reply(from_, None, exc)
                    continue
                if result is NoReply or type(result) is NoReply:
                    continue
                rtype = type(result)
                if rtype is Reply:
                    result = result.value
                elif rtype is Stop:
                    if result.reply is not Stop._NO_REPLY:
                        self._inbound.discard(from_)
                        node._reply(from_, result.reply, None)
                    return result.reason
                self._inbound.discard(from_)
                node._reply(from_, result, None)
            elif kind == CAST:
                try:
                    result = await self.handle_cast(item[1])
                except Rejected as exc:
                    log.warning("%s rejected cast %s: %s", self, short_repr(item[1]), exc)
                    continue
                if type(result) is Stop:
                    return result.reason
            elif kind == INFO:
                message = item[1]
                if type(message) is Exit and message.pid == self._parent and self.trap_exit:
                    return message.reason
                result = await self.handle_info(message)
                if type(result) is Stop:
                    return result.reason
            elif kind == SYSTEM:
                reason = self._system(item[1], item[2])
                if reason is not _NOTHING:
                    return reason

    def _system(self, request: Any, from_: From | None) -> Any:
        """System messages: never seen by user callbacks."""
        match request:
            case ("stop", reason):
                return reason
            case ("info",):
                if from_ is not None:
                    self.node._reply(from_, self.node.process_info(self.pid), None)
        return _NOTHING
