"""The function contract, modelled on Knative Functions' Python template."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cloudevents.core.base import BaseCloudEvent

    from .config import FunctionConfig

# (rule, methods, view) triples a function may add to its Flask app, e.g. the V2 inference API.
Route = tuple[str, list[str], Callable]


class BadInput(Exception):
    """The event's input can never be processed (unreadable audio, pickled model, …).

    The runtime answers 422 with this message, which Knative does not retry, so the broker sends
    the event straight to the dead-letter sink with the reason in `knativeerrordata`.
    """

    status = 422


@runtime_checkable
class Function(Protocol):
    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        """Process one event; return the reply event (re-enters the broker) or None."""


class Lifecycle(Protocol):
    """Optional hooks; the runtime calls whichever a function defines."""

    def start(self, cfg: FunctionConfig) -> None: ...
    def stop(self) -> None: ...
    def ready(self) -> bool: ...
    def alive(self) -> bool: ...
    def routes(self) -> list[Route]: ...
