"""What the running app holds: settings and the adapters every request shares."""

from __future__ import annotations

from dataclasses import dataclass

from access_api.db import Database
from access_api.pagination import Cursors
from access_api.services.clock import Clock
from access_api.services.keyring import Keyring
from access_api.services.mailer import Dispatcher
from access_api.services.passwords import Passwords
from access_api.services.webhooks import WebhookDispatcher
from access_api.settings import Settings


@dataclass(slots=True)
class AppState:
    settings: Settings
    database: Database
    keyring: Keyring
    passwords: Passwords
    clock: Clock
    cursors: Cursors
    dispatcher: Dispatcher
    webhooks: WebhookDispatcher
