import pycrdt

from crdt.document import render
from crdt.restore import restore


def snapshot(doc: pycrdt.Doc) -> pycrdt.Doc:
    copy = pycrdt.Doc()
    copy.apply_update(doc.get_update())
    return copy


def test_restore_brings_every_root_type_back_as_a_forward_change():
    doc = pycrdt.Doc()
    body = doc.get("content", type=pycrdt.Text)
    meta = doc.get("meta", type=pycrdt.Map)
    items = doc.get("items", type=pycrdt.Array)
    xml = doc.get("xml", type=pycrdt.XmlFragment)
    body.insert(0, "first draft")
    meta["title"] = "Draft"
    items.extend([1, 2])
    xml.children.append(pycrdt.XmlElement("p", {"a": "1"}, [pycrdt.XmlText("old")]))
    old = snapshot(doc)
    expected = render(old)

    body.insert(0, "rewritten: ")
    meta["title"] = "Final"
    meta["extra"] = True
    items.append(3)
    xml.children.append(pycrdt.XmlElement("p", {}, [pycrdt.XmlText("new")]))
    doc.get("later", type=pycrdt.Text).insert(0, "added after")
    state_before = doc.get_state()

    peer = snapshot(doc)  # an editor that is connected while the restore happens
    with doc.transaction():
        restore(doc, old)
    peer.apply_update(doc.get_update(peer.get_state()))

    assert render(doc) == {**expected, "later": ""}
    assert render(peer) == expected  # a root with only deleted items is not rendered
    # History was kept: the restore is new operations on top, not a reset.
    assert doc.get_state() != state_before
    assert str(snapshot(doc).get("content", type=pycrdt.Text)) == "first draft"


def test_restoring_text_replaces_it_whole_so_no_letters_of_two_texts_mix():
    old_text = "The quick brown fox jumps over the lazy dog."
    doc = pycrdt.Doc()
    body = doc.get("content", type=pycrdt.Text)
    body.insert(0, old_text)
    old = snapshot(doc)
    del body[0 : len(body)]
    body.insert(0, "Completely different text, typed later.")
    # Someone else types into the newer text while the restore happens.
    peer = snapshot(doc)
    peer_body = peer.get("content", type=pycrdt.Text)
    peer_body.insert(11, "[typed meanwhile]")

    with doc.transaction():
        restore(doc, old)
    assert str(body) == old_text
    # Letter by letter, the restore would keep "e", "t", " " ... of the newer text inside the
    # old one; replaced whole, the old text is one run, and the concurrent words stay whole.
    before_merge = doc.get_state()
    doc.apply_update(peer.get_update(before_merge))
    peer.apply_update(doc.get_update(peer.get_state()))
    merged = str(doc.get("content", type=pycrdt.Text))
    assert merged == str(peer_body)
    assert old_text in merged and "[typed meanwhile]" in merged
    assert merged.replace("[typed meanwhile]", "", 1) == old_text


def test_restoring_the_same_text_changes_nothing():
    doc = pycrdt.Doc()
    doc.get("content", type=pycrdt.Text).insert(0, "same")
    state = doc.get_state()
    with doc.transaction():
        restore(doc, snapshot(doc))
    assert doc.get_state() == state
