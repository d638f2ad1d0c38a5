"""The sequence model alone as a full-catalogue baseline."""

from __future__ import annotations

import numpy as np

from features.session import SessionEvent, SessionState, fold_events
from models.baselines import BASELINES, Catalogue, SequenceModel, StateAwareScorer, top_k
from models.labelled_sessions import LabelledPlay, Session
from models.sequence.config import SequenceConfig

FAST = SequenceConfig(embedding_dim=16, hidden=32, epochs=60, batch_size=16, learning_rate=0.02)


def _session(sid: str, *tracks: str) -> Session:
    return Session(sid, f"u-{sid}", tuple(LabelledPlay(t, "listened") for t in tracks))


SESSIONS = [_session(f"g{i}", "a", "b", "c", "d") for i in range(8)]
SESSIONS += [_session(f"h{i}", "x", "y", "z", "d") for i in range(8)]


def _state(*tracks: str) -> SessionState:
    events = []
    for i, t in enumerate(tracks):
        events.append(SessionEvent("start", t, 2 * i, None))
        if i < len(tracks) - 1:
            events.append(SessionEvent("end", t, 2 * i + 1, "listened"))
    return fold_events(events)


def test_it_is_registered_and_reads_the_stream_s_state() -> None:
    assert "sequence" in {m.name for m in BASELINES}
    cat = Catalogue.of(SESSIONS)
    model = SequenceModel.fit(SESSIONS, cat, config=FAST)
    assert isinstance(model, StateAwareScorer)
    for prefix, expected in ((["a"], "b"), (["a", "b"], "c"), (["x"], "y"), (["x", "y"], "z")):
        idx = cat.indices(prefix)
        state = _state(*prefix)
        top = top_k(model.propose_state(idx, state), cat, idx, 1)
        assert cat.track_ids[int(top[0])] == expected, prefix
        # without the state (outcomes unknown) the tracks alone still lead there
        assert cat.track_ids[int(top_k(model.propose(idx), cat, idx, 1)[0])] == expected
    everything = cat.indices(["a", "b", "c"])
    top = top_k(model.propose_state(everything, _state("a", "b", "c")), cat, everything, 10)
    assert not set(top.tolist()) & set(everything.tolist())
    assert len(top) == cat.n_tracks - 3
    assert np.isfinite(model.propose(cat.indices(["unknown"])).keys).all()
