"""Redis key layout, shared by the worker (writes) and the API (reads).

======================================  ===================================================
key                                     what it holds
======================================  ===================================================
``<prefix>:s:{<session>}:log``          LIST of the session's compact event records
``<prefix>:s:{<session>}:seen``         SET of the event ids applied (the dedupe set)
``<prefix>:s:{<session>}:state``        STRING, JSON of the session's named features
``<prefix>:s:{<session>}:recs``         HASH trigger event id -> the list published for it
``<prefix>:s:{<session>}:pos``          HASH where the session's last event was read: ``p``
                                        (partition tag), ``e`` (writer epoch), ``o`` (offset)
``<prefix>:p:{<topic>:<partition>}``    HASH of an input partition: ``epoch`` (its owner's,
                                        raised on every assignment) and ``next`` (every offset
                                        below it has been applied or dead-lettered)
``<prefix>:u:{<user>}:latest``          STRING, the user's latest list
``<prefix>:u:{<user>}:session``         STRING, the id of the user's most recent session
``<prefix>:active-users``               ZSET user id -> epoch ms of the user's last event
======================================  ===================================================

``<session>`` and ``<user>`` are the ids escaped by :func:`escape_id`: every character outside
``A-Z a-z 0-9 _ . : @ + = - ~`` is percent-encoded as the upper-case ``%XX`` of each of its
UTF-8 bytes (``ユーザー 3`` -> ``%E3%83%A6%E3%83%BC%E3%82%B6%E3%83%BC%203``,
``{a}`` -> ``%7Ba%7D``, ``%`` -> ``%25``). So:

* ids of those characters only (every id the contract allowed before ids became opaque) keep
  exactly the keys they always had, and existing data stays readable;
* the escaping is injective (``%`` itself is escaped, and ``unescape_id`` inverts it), so two
  different ids never share a key;
* an escaped id has no ``{`` or ``}``: the first ``{`` of a session key opens the hash tag and
  the first ``}`` after it closes it, so the Redis Cluster hash tag of every session key is the
  escaped session id (one session, one slot) and no id can forge another one's tag;
* keys are printable ASCII without spaces, quotes or glob characters (``* ? [ ]``), safe to
  type in ``redis-cli`` and to ``SCAN MATCH``. Only ASCII and the rules above are involved: the
  result does not depend on the Unicode database of the Python version.

An escaped id is at most 12 bytes per character (128 characters: 1,536 bytes). Values (set
members, hash fields, the active-users members, the user's session id) hold the ids as they
are: Redis strings are binary-safe. The prefix (``NP_REDIS_KEY_PREFIX``) has no braces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote

#: Characters an id keeps as they are in a key (``urllib.parse.quote`` keeps the unreserved
#: ``A-Z a-z 0-9 _ . - ~``; these are added).
_KEPT_PUNCTUATION: Final = ":@+="
_PLAIN: Final = re.compile(r"[A-Za-z0-9_.:@+=~\-]+")


def escape_id(value: str) -> str:
    """The id as it appears in a key (see the module's docstring); injective."""
    if _PLAIN.fullmatch(value):
        return value
    return quote(value, safe=_KEPT_PUNCTUATION, encoding="utf-8", errors="strict")


def unescape_id(text: str) -> str:
    """The id an escaped id came from: ``unescape_id(escape_id(x)) == x``."""
    return unquote(text, encoding="utf-8", errors="strict")


def partition_tag(topic: str, partition: int) -> str:
    """``<escaped topic>:<partition>``: names one input partition in keys and in values."""
    return f"{escape_id(topic)}:{partition}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "np"

    def session_log(self, session_id: str) -> str:
        """LIST of compact event records (``features.session.encode_event``), oldest first."""
        return f"{self.prefix}:s:{{{escape_id(session_id)}}}:log"

    def session_seen(self, session_id: str) -> str:
        """SET of event ids already applied to the session (the dedupe set)."""
        return f"{self.prefix}:s:{{{escape_id(session_id)}}}:seen"

    def session_state(self, session_id: str) -> str:
        """STRING, JSON of the session's named features after the last applied event."""
        return f"{self.prefix}:s:{{{escape_id(session_id)}}}:state"

    def session_recs(self, session_id: str) -> str:
        """HASH trigger event id -> the RecommendationMessage JSON published for it."""
        return f"{self.prefix}:s:{{{escape_id(session_id)}}}:recs"

    def session_position(self, session_id: str) -> str:
        """HASH of the partition tag, writer epoch and offset of the session's last event."""
        return f"{self.prefix}:s:{{{escape_id(session_id)}}}:pos"

    def session_attribution(self, session_id: str) -> str:
        """STRING: the session's exposure attribution state (features/attribution.py)."""
        return f"{self.prefix}:s:{{{escape_id(session_id)}}}:att"

    def session_outcomes(self, session_id: str) -> str:
        """HASH: event id -> the outcome message that event completed."""
        return f"{self.prefix}:s:{{{escape_id(session_id)}}}:out"

    def partition(self, topic: str, partition: int) -> str:
        """HASH ``epoch`` / ``next`` of one input partition (its own hash slot)."""
        return f"{self.prefix}:p:{{{partition_tag(topic, partition)}}}"

    def user_latest(self, user_id: str) -> str:
        """STRING, the user's latest RecommendationMessage JSON."""
        return f"{self.prefix}:u:{{{escape_id(user_id)}}}:latest"

    def user_session(self, user_id: str) -> str:
        """STRING, the id of the user's most recent session."""
        return f"{self.prefix}:u:{{{escape_id(user_id)}}}:session"

    def active_users(self) -> str:
        """ZSET user id -> epoch ms of the user's last event (for the live page's user picker)."""
        return f"{self.prefix}:active-users"
