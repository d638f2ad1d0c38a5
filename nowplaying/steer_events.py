"""The steering contract: the intents a listener steers a session with.

A listener (through the client app) steers the live session with one intent:

* ``more_like_this`` (a track): lean the list towards tracks like it;
* ``less_like_this`` (a track, a thumbs-down): lean away from it, drop near-duplicates of it;
* ``discover``: new to me, less popular tracks;
* ``familiar``: close to what I have listened to;
* ``reset``: forget every intent of the session.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

IntentKind = Literal["more_like_this", "less_like_this", "discover", "familiar", "reset"]
INTENT_KINDS: Final[tuple[IntentKind, ...]] = get_args(IntentKind)
#: The intents that name a track (``track_id`` required); the others take none.
TRACK_INTENTS: Final[frozenset[IntentKind]] = frozenset({"more_like_this", "less_like_this"})
