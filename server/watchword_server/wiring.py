"""Builds the domain services from settings: the one place that wires them together."""

from __future__ import annotations

from dataclasses import dataclass

from watchword_server.config import Settings
from watchword_server.domain.access.changes import ChangeNotices
from watchword_server.domain.access.check_cache import CacheGroup, CheckCache
from watchword_server.domain.access.checks import AccessChecks
from watchword_server.domain.access.service_keys import ServiceKeys
from watchword_server.domain.accounts import account_notices
from watchword_server.domain.accounts.account_keys import MailedKeys
from watchword_server.domain.accounts.accounts import Accounts
from watchword_server.domain.accounts.hooks import Hooks
from watchword_server.domain.accounts.passkeys import Passkeys, relying_party
from watchword_server.domain.accounts.password_flows import PasswordFlows
from watchword_server.domain.accounts.profile import Profiles
from watchword_server.domain.accounts.second_factors import SecondFactors
from watchword_server.domain.accounts.services import AccountServices
from watchword_server.domain.accounts.sessions import Sessions
from watchword_server.domain.accounts.throttle import LoginThrottle
from watchword_server.domain.admin.app_events import ApplicationEvents
from watchword_server.domain.admin.events import EventReader
from watchword_server.domain.admin.groups import GroupAdmin
from watchword_server.domain.admin.second_factors import SecondFactorAdmin
from watchword_server.domain.admin.users import UserAdmin
from watchword_server.domain.audit.events import EventLog
from watchword_server.domain.common.background import BackgroundWork
from watchword_server.domain.common.clock import Clock
from watchword_server.domain.common.paging import PageTokens
from watchword_server.embedded import load_or_create_embedded_key
from watchword_server.runtime.change_listener import ChangeListener
from watchword_server.runtime.event_stream import EventStream
from watchword_server.runtime.mail_sender import MailSender
from watchword_server.runtime.mail_transports import MailTransport, transport_from_settings
from watchword_server.runtime.retention import RetentionJob
from watchword_server.security.hashing_pool import HashingPool
from watchword_server.security.keyring import KeyRing
from watchword_server.security.passwords import PasswordHasher, Pepper
from watchword_server.security.secret_box import SecretBox
from watchword_server.security.tokens import derived_token
from watchword_server.storage import check_reads, logins
from watchword_server.storage.check_reads import CheckReads
from watchword_server.storage.db import Database
from watchword_server.storage.pg_prepared import PreparedPool, conninfo_for
from watchword_server.storage.touch_writer import TouchWriter

__all__ = ["Domain", "build_domain", "build_keyring"]


def build_keyring(settings: Settings) -> KeyRing:
    """The pepper and its retired predecessors, by id."""
    key = settings.hmac_key
    if key is None:
        key = load_or_create_embedded_key(settings.database_url)
    keys = {key_id: value.encode() for key_id, value in settings.hmac_retired_keys.items()}
    keys[settings.hmac_key_id] = key.encode()
    return KeyRing(current_id=settings.hmac_key_id, keys=keys)


@dataclass(frozen=True)
class Domain:
    """Every domain service of one server process."""

    accounts: Accounts
    second_factors: SecondFactors
    second_factor_admin: SecondFactorAdmin
    sessions: Sessions
    passwords: PasswordFlows
    profiles: Profiles
    passkeys: Passkeys
    mail_sender: MailSender
    checks: AccessChecks
    user_admin: UserAdmin
    group_admin: GroupAdmin
    event_reader: EventReader
    app_events: ApplicationEvents
    event_stream: EventStream
    service_keys: ServiceKeys
    check_reads: CheckReads
    prepared: PreparedPool | None
    check_cache: CheckCache
    key_cache: CheckCache
    change_listener: ChangeListener
    touches: TouchWriter
    hashing: HashingPool
    background: BackgroundWork
    retention: RetentionJob


def build_domain(
    settings: Settings,
    database: Database,
    clock: Clock,
    *,
    mail_transport: MailTransport | None = None,
    hooks: Hooks | None = None,
) -> Domain:
    """Wire the domain services (with an embedding's ``hooks``); nothing starts running
    until the caller starts it."""
    keyring = build_keyring(settings)
    hasher = HashingPool(
        PasswordHasher(
            settings.hmac_alg, Pepper(keyring.current_id, keyring.current), keyring.retired()
        ),
        threads=settings.password_hash_threads,
        max_waiting=settings.password_hash_max_waiting,
        niceness=settings.password_hash_niceness,
    )
    events = EventLog(settings.messages, clock, enabled=settings.log_events)
    cache = CheckCache(
        max_staleness=settings.check_cache_max_staleness, max_entries=settings.check_cache_size
    )
    # Service keys are the callers' credentials, not answers: cached on their own terms.
    key_cache = CheckCache(
        max_staleness=settings.service_key_cache_max_staleness, max_entries=10_000
    )
    caches = CacheGroup(cache, key_cache)
    notices = ChangeNotices(database, caches.apply)
    prepared = None
    if database.is_postgresql:
        # The hot path's statements (checks, logins), prepared on connections of their own.
        prepared = PreparedPool(
            conninfo_for(database),
            [*check_reads.PG_STATEMENTS.values(), *logins.PG_STATEMENTS],
            size=settings.database_pool_size,
        )
    reads = CheckReads(database, prepared)
    touches = TouchWriter(database)
    sessions = Sessions(
        database,
        clock,
        short=settings.session_expiration,
        long=settings.session_long_expiration,
        reads=reads,
        cache=cache,
        notices=notices,
        touches=touches,
    )
    keys = MailedKeys(settings, keyring, clock)
    transport = mail_transport or transport_from_settings(settings)
    sender = MailSender(
        database,
        transport,
        account_notices.renderer(settings.messages, keys.render),
        clock,
        max_attempts=settings.mail_max_attempts,
        claim_lease=settings.mail_claim_lease,
    )
    throttle = LoginThrottle(
        settings, derived_token(keyring.current, "login-throttle", b"").encode(), clock
    )
    background = BackgroundWork()
    # One for both: on SQLite it is also where reservations of the throttle queue.
    login_rows = logins.Logins(database, prepared)
    shared = AccountServices(
        settings,
        database,
        hasher,
        sessions,
        events,
        keys,
        throttle,
        clock,
        notices,
        login_rows,
        mail_queued=sender.wake,
        hooks=hooks or Hooks(),
    )
    second_factors = SecondFactors(shared, SecretBox(keyring))
    accounts = Accounts(shared, second_factors)
    passwords = PasswordFlows(shared, background)
    profiles = Profiles(settings, database, sessions, events, clock, notices)
    passkeys = Passkeys(
        shared,
        relying_party(
            settings.webauthn_rp_id,
            settings.webauthn_rp_name,
            settings.webauthn_origins,
            settings.webauthn_challenge_ttl,
        ),
    )
    pages = PageTokens(derived_token(keyring.current, "page-tokens", b"").encode())
    stream = EventStream(database)
    return Domain(
        accounts=accounts,
        second_factors=second_factors,
        second_factor_admin=SecondFactorAdmin(database, events),
        sessions=sessions,
        passwords=passwords,
        profiles=profiles,
        passkeys=passkeys,
        mail_sender=sender,
        checks=AccessChecks(reads, sessions, cache),
        user_admin=UserAdmin(settings, database, hasher, events, pages, clock, notices),
        group_admin=GroupAdmin(database, events, pages, clock, notices),
        event_reader=EventReader(database, stream, pages),
        app_events=ApplicationEvents(database, events),
        event_stream=stream,
        service_keys=ServiceKeys(
            database, clock, reads=reads, cache=key_cache, notices=notices, touches=touches
        ),
        check_reads=reads,
        prepared=prepared,
        check_cache=cache,
        key_cache=key_cache,
        change_listener=ChangeListener(database, caches),
        touches=touches,
        hashing=hasher,
        background=background,
        retention=RetentionJob(database, settings, clock),
    )
