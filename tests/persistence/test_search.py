"""persistence.search on memory, SQLite (FTS5) and PostgreSQL (tsvector + GIN): one API, the
same hits, whatever the language, punctuation or operators in the query."""

from __future__ import annotations

import re

import pycrdt
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from crdt import document
from persistence import compaction, notes, search, update_log
from persistence.errors import InvalidError
from persistence.schema import note_search
from tests.persistence.test_notes import add_workspace

TEXTS = {
    "fr": "Le café de la gare est fermé à Noël.",
    "de": "Die Straße nach München ist gesperrt.",
    "ru": "Москва — столица России, встреча в пятницу.",
    "ja": "東京タワーは高いです。明日会議があります。",
    "zh": "我们明天在北京开会讨论预算。",
    "en": "Quarterly budget review: revenue (Q3) up 12.5%; see rock-n-roll notes.",
    "ko": "서울에서 회의가 있습니다",
}


def put(conn, note_id, text, *, workspace="ws", title=""):
    notes.create_note(conn, workspace_id=workspace, note_id=note_id, title=title)
    doc = document.new_doc()
    doc.get(document.BODY, type=pycrdt.Text).insert(0, text)
    update_log.append_update(conn, note_id, doc.get_update())
    return search.index_note(conn, note_id, text)


@pytest.fixture
def indexed(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        add_workspace(conn, "other")
        for lang, text in TEXTS.items():
            put(conn, lang, text, title=f"notes {lang}")
        put(conn, "secret", "Le café secret de l'autre espace", workspace="other")
    return db


def found(db, query, **options):
    with db.read() as conn:
        return [item["note_id"] for item in search.search(conn, query, **options).items]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cafe", {"fr"}),  # accents fold both ways
        ("CAFÉ", {"fr"}),
        ("noel ferme", {"fr"}),
        ("strasse", {"de"}),  # ß folds to ss
        ("münchen", {"de"}),
        ("москва", {"ru"}),
        ("ПЯТНИЦУ", {"ru"}),
        ("東京", {"ja"}),  # a run of CJK is a phrase of characters
        ("会議", {"ja"}),
        ("北京", {"zh"}),
        ("预算", {"zh"}),
        ("회의가", {"ko"}),
        ("q3", {"en"}),
        ("12.5", {"en"}),
        ('"rock n roll"', {"en"}),
        ('"roll rock"', set()),  # a phrase keeps its order
        ("budget review", {"en"}),
        ("notes", set(TEXTS)),  # titles are searched too
    ],
)
def test_words_in_many_languages_are_found(indexed, query, expected):
    assert set(found(indexed, query, workspace_ids=["ws"])) == expected


@pytest.mark.parametrize(
    "query",
    [
        'cafe OR "',
        "café AND NOT gare",
        "NEAR(café gare) title:cafe ^cafe cafe* -cafe",
        '"""cafe"""',
        "cafe'; DROP TABLE notes; --",
        "(cafe) {gare} [x] <-> & | ! :*",
        "\\cafe\\",
    ],
)
def test_operators_and_quotes_are_plain_words(indexed, query):
    # Whatever FTS5 or tsquery would make of them, they are separators or words here.
    result = found(indexed, query, workspace_ids=["ws"])
    assert set(result) <= {"fr"}


def _words_one_by_one(folded: str) -> list[str]:
    """What a word is, read character by character: a run of letters and digits (what the
    regex engine calls word characters, less the underscore), each CJK character alone."""
    cjk = re.compile(f"[{search._CJK}]")
    found, word = [], ""
    for char in folded:
        if cjk.fullmatch(char):
            found += [word, char] if word else [char]
            word = ""
        elif char.isalnum():
            word += char
        elif word:
            found.append(word)
            word = ""
    return [*found, word] if word else found


_MIXED = st.text(
    st.one_of(
        st.characters(max_codepoint=127),
        st.sampled_from("éÉßŒœﬁ²½ _-\u2013\u2014\u0301\u3000。、東京タワーは서울Москва𠀀"),
        st.characters(),
    )
)


@given(_MIXED)
def test_words_are_runs_of_letters_and_digits_and_single_cjk_characters(text):
    assert search.words(text) == _words_one_by_one(search.fold(text))


@pytest.mark.parametrize(
    "query", ["", "   ", '""', "!!! ... ---", "x" * 1001, " ".join(["a"] * 40)]
)
def test_bad_queries_are_refused_before_any_sql(query):
    with pytest.raises(InvalidError):
        search.parse_query(query)


def test_other_workspaces_and_deleted_notes_are_not_found(indexed):
    assert found(indexed, "secret", workspace_ids=["ws"]) == []
    assert found(indexed, "secret", workspace_ids=["other"]) == ["secret"]
    assert found(indexed, "secret") == ["secret"]  # every workspace (an admin)
    with indexed.begin() as conn:
        notes.delete_note(conn, "fr")
    assert found(indexed, "cafe", workspace_ids=["ws"]) == []
    with indexed.begin() as conn:
        notes.undelete_note(conn, "fr")
    assert found(indexed, "cafe", workspace_ids=["ws"]) == ["fr"]


def test_ranking_title_first_then_paging_by_cursor(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        put(conn, "body-once", "a long text that mentions kiwi once among many other words here")
        put(conn, "body-many", "kiwi kiwi kiwi and more kiwi")
        put(conn, "in-title", "nothing relevant in the body", title="Kiwi recipes")
        for i in range(7):
            put(conn, f"n{i}", f"kiwi number {i}")
    with db.read() as conn:
        first = search.search(conn, "kiwi", limit=1)
    assert first.items[0]["note_id"] == "in-title"
    seen, cursor = [], None
    while True:
        with db.read() as conn:
            page = search.search(conn, "kiwi", limit=3, cursor=cursor)
        seen += [item["note_id"] for item in page.items]
        scores = [item["score"] for item in page.items]
        assert scores == sorted(scores, reverse=True)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 10
    with db.read() as conn, pytest.raises(InvalidError):
        search.search(conn, "kiwi", cursor="not-a-cursor")


def test_snippets_highlight_the_words_in_the_original_text(db):
    body = ("filler " * 60) + "Le Café de Noël <b>ouvert</b> " + ("more " * 60)
    with db.begin() as conn:
        add_workspace(conn, "ws")
        put(conn, "n", body, title="Café")
    with db.read() as conn:
        (item,) = search.search(conn, "cafe ouvert").items
    snippet = item["snippet"]
    marked = [snippet[s : s + n] for s, n in item["highlights"]]
    assert marked == ["Café", "ouvert"]
    assert "<mark>Café</mark>" in item["snippet_html"]
    assert "&lt;b&gt;<mark>ouvert</mark>&lt;/b&gt;" in item["snippet_html"]
    assert item["snippet_html"].startswith("…") and item["snippet_html"].endswith("…")
    assert item["title_highlights"] == [[0, 4]]


def test_snippets_show_the_words_before_the_match(db):
    body = ("filler " * 60) + "Remember the periscope for the boat. " + ("more " * 60)
    with db.begin() as conn:
        add_workspace(conn, "ws")
        put(conn, "n", body)
    with db.read() as conn:
        (item,) = search.search(conn, "periscope").items
    snippet = item["snippet"]
    assert "filler Remember the periscope for the boat." in snippet
    assert snippet.startswith("filler ")  # at a word boundary
    (start, length), *_ = item["highlights"]
    assert snippet[start : start + length] == "periscope" and start >= 40


def test_reindex_survives_compaction_and_follows_edits(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        notes.create_note(conn, workspace_id="ws", note_id="n")
    doc = document.new_doc()
    text = doc.get(document.BODY, type=pycrdt.Text)
    with db.begin() as conn:
        for word in ("alpha ", "beta ", "gamma "):
            before = doc.get_state()
            text += word
            update_log.append_update(conn, "n", doc.get_update(before))
    with db.begin() as conn:
        assert search.stale_notes(conn) == ["n"]
        result = search.reindex_note(conn, "n")
        assert result.changed and result.previous is None
        assert search.stale_notes(conn) == []
    compaction.compact_note(db, "n")
    assert found(db, "beta") == ["n"]
    with db.begin() as conn:
        assert search.stale_notes(conn) == []  # compaction keeps last_seq
        again = search.reindex_note(conn, "n")
        assert not again.changed and again.previous == "alpha beta gamma "
    with db.begin() as conn:
        notes.rename_note(conn, "n", "Zebra crossing")
    assert found(db, "zebra") == ["n"]


def test_many_notes_are_indexed_in_one_call_as_one_at_a_time(db, monkeypatch):
    monkeypatch.setattr(search, "_CHUNK", 2)  # three chunks of ids for five notes
    with db.begin() as conn:
        add_workspace(conn, "ws")
        for i in range(4):
            notes.create_note(conn, workspace_id="ws", note_id=f"n{i}", title=f"Title{i}")
        first = search.index_notes(
            conn,
            [("n3", "delta", 7), ("n0", "alpha", None), ("gone", "x", 1), ("n1", "beta", 2)],
        )
    assert [r and (r.note_id, r.version, r.previous, r.changed) for r in first] == [
        ("n3", 7, None, True),
        ("n0", 0, None, True),  # the note's own last_seq by default
        None,  # no such note
        ("n1", 2, None, True),
    ]
    assert found(db, "delta") == ["n3"] and found(db, "title1") == ["n1"]
    with db.begin() as conn:
        second = search.index_notes(
            conn, [("n0", "alpha", 3), ("n1", "beta gamma", 4), ("n2", "epsilon", 5)]
        )
        with pytest.raises(InvalidError, match="once"):
            search.index_notes(conn, [("n0", "a", 1), ("n0", "b", 2)])
    # Same body: only the version moves; a new body replaces the words; a new row.
    assert [(r.version, r.previous, r.previous_version, r.changed) for r in second] == [
        (3, "alpha", 0, False),
        (4, "beta", 2, True),
        (5, None, None, True),
    ]
    assert found(db, "gamma") == ["n1"] and found(db, "epsilon") == ["n2"]
    assert found(db, "alpha") == ["n0"] and found(db, "beta") == ["n1"]
    with db.read() as conn:
        rows = dict(conn.execute(sa.select(note_search.c.note_id, note_search.c.version)).all())
    assert rows == {"n0": 3, "n1": 4, "n2": 5, "n3": 7}


def test_the_index_row_goes_with_a_purged_note(db):
    with db.begin() as conn:
        add_workspace(conn, "ws")
        put(conn, "n", "ephemeral words")
        conn.execute(sa.delete(notes.notes).where(notes.notes.c.id == "n"))
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(note_search)).scalar() == 0
    assert found(db, "ephemeral") == []
    if db.driver != "postgres":
        with db.begin() as conn:
            # The FTS5 table followed the cascade (its triggers fire on it): consistent.
            conn.exec_driver_sql(
                "INSERT INTO note_fts(note_fts, rank) VALUES ('integrity-check', 1)"
            )
            assert conn.exec_driver_sql("SELECT count(*) FROM note_fts").scalar() == 0


def test_a_big_body_is_indexed_up_to_the_limit(db):
    words = " ".join(f"w{i}" for i in range(60_000))
    with db.begin() as conn:
        add_workspace(conn, "ws")
        put(conn, "big", words)
    assert found(db, "w100") == ["big"]
    assert found(db, "w59999") == []  # past DEFAULT_MAX_INDEXED_CHARS


def test_the_index_is_rebuilt_after_export_and_import(db, tmp_path, empty_database):
    from persistence import archive, migrate

    with db.begin() as conn:
        add_workspace(conn, "ws")
        put(conn, "n", "Восстановление из архива")
    path = tmp_path / "backup.coscribe.gz"
    archive.export_archive(db, path)
    target = empty_database("memory")
    migrate.upgrade(target)
    archive.import_archive(target, path)
    # The index is not archived: an imported note is stale until indexed (the server does it
    # on its own; `coscribe search reindex` at once).
    with target.begin() as conn:
        assert search.stale_notes(conn) == ["n"]
        for note_id in search.stale_notes(conn):
            search.reindex_note(conn, note_id)
    assert found(target, "архива") == ["n"]
