"""What end users see of their own account, built once per record, and Introspect's
answer, built once per record and expiry.

Custom fields the deployment declares unreadable are left out. A cached session holds the
same ``UserRecord`` object until a change replaces it, and building the message is most of
an Introspect's own work: copying a built one into the response costs a third of building
it again, and a built response is only serialized again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime

from watchword.auth.v1 import auth_service_pb2, resources_pb2
from watchword_server.model.records import UserRecord
from watchword_server.transport.convert import timestamp, user_to_proto

__all__ = ["UserViews"]


class UserViews:
    """``user_to_proto`` without the ``hidden`` custom fields, remembered by record
    identity for at most ``size`` records."""

    def __init__(self, hidden: Collection[str] = (), size: int = 10_000) -> None:
        self._hidden = frozenset(hidden)
        self._size = size
        # Keyed by id(); the record is kept alive beside its view, so the id cannot be
        # reused by another object while the entry exists.
        self._views: dict[int, tuple[UserRecord, resources_pb2.User]] = {}
        # Introspect's whole answer, which changes only when the session's window slides.
        self._introspections: dict[
            tuple[int, datetime], tuple[UserRecord, auth_service_pb2.IntrospectResponse]
        ] = {}

    def introspection(
        self, user: UserRecord, expire_time: datetime
    ) -> auth_service_pb2.IntrospectResponse:
        """Introspect's answer for a session of ``user`` expiring at ``expire_time``
        (never to be changed by the caller)."""
        key = (id(user), expire_time)
        known = self._introspections.get(key)
        if known is not None and known[0] is user:
            return known[1]
        response = auth_service_pb2.IntrospectResponse(
            user=self.of(user), expire_time=timestamp(expire_time)
        )
        if len(self._introspections) >= self._size:
            self._introspections.clear()
        self._introspections[key] = (user, response)
        return response

    def of(self, user: UserRecord) -> resources_pb2.User:
        """The view of ``user``: never to be changed by the caller (a message that takes
        it as a field copies it)."""
        known = self._views.get(id(user))
        if known is not None and known[0] is user:
            return known[1]
        shown = user
        if self._hidden and not self._hidden.isdisjoint(user.extra):
            extra = {key: value for key, value in user.extra.items() if key not in self._hidden}
            shown = dataclasses.replace(user, extra=extra)
        view = user_to_proto(shown)
        if len(self._views) >= self._size:
            self._views.clear()  # records of sessions long gone; the live ones come back
        self._views[id(user)] = (user, view)
        return view
