"""The per-request context handed to every resolver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config import Settings
from db.engine import Database
from db.models import Account, StaffUser
from services.policy import Actor

if TYPE_CHECKING:
    from resolvers.loaders import Loaders
    from subscriptions.realtime import Realtime


@dataclass
class Context:
    db: Database
    settings: Settings
    request_id: str
    client_ip: str
    request: Any = None
    response: Any = None
    token: str | None = None
    user: StaffUser | None = None
    account: Account | None = None
    actor: Actor | None = None
    token_expires_at: Any = None
    realtime: Realtime | None = None
    loaders: Loaders = field(init=False)
    # read by strawberry on websockets (connection_init payload)
    connection_params: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        from resolvers.loaders import Loaders

        self.loaders = Loaders(self)
