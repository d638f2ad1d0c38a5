"""Redis key layout, shared by the worker (writes) and the API (reads).

Session keys carry the session id as a hash tag (``{...}``), so one session's keys live in one
Redis Cluster slot and one Lua script may touch all of them. Ids cannot contain braces (see
:data:`nowplaying.events.ID_PATTERN`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "np"

    def session_log(self, session_id: str) -> str:
        """LIST of compact event records (``features.session.encode_event``), oldest first."""
        return f"{self.prefix}:s:{{{session_id}}}:log"

    def session_seen(self, session_id: str) -> str:
        """SET of event ids already applied to the session (the dedupe set)."""
        return f"{self.prefix}:s:{{{session_id}}}:seen"

    def session_state(self, session_id: str) -> str:
        """STRING, JSON of the session's named features after the last applied event."""
        return f"{self.prefix}:s:{{{session_id}}}:state"

    def session_recs(self, session_id: str) -> str:
        """HASH trigger event id -> the RecommendationMessage JSON published for it."""
        return f"{self.prefix}:s:{{{session_id}}}:recs"

    def user_latest(self, user_id: str) -> str:
        """STRING, the user's latest RecommendationMessage JSON."""
        return f"{self.prefix}:u:{{{user_id}}}:latest"

    def user_session(self, user_id: str) -> str:
        """STRING, the id of the user's most recent session."""
        return f"{self.prefix}:u:{{{user_id}}}:session"

    def active_users(self) -> str:
        """ZSET user id -> epoch ms of the user's last event (for the live page's user picker)."""
        return f"{self.prefix}:active-users"
