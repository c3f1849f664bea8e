"""Restoring an old version as a forward change.

The current document is edited until its content equals the old one: history is kept, every
editor sees the old content come back as ordinary edits, and the restore itself can be undone
by restoring the version taken before it. Text that differs is replaced as a whole (one delete
of everything, one insert of the old text): a letter-by-letter diff would reuse letters of the
newer text inside the old one, so undoing a later edit, or an edit made at the same time by
someone else, would pull letters out of the restored text. Maps are restored key by key,
arrays and XML as a whole when they differ.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from . import text
from .document import root_types


def restore(doc: Doc, old: Doc) -> None:
    """Make ``doc``'s content equal ``old``'s. Call inside a transaction on ``doc``."""
    old_types = root_types(old)
    for name, kind in root_types(doc).items():
        if name not in old_types:
            _clear(doc.get(name, type=kind))
    for name, kind in old_types.items():
        current = root_types(doc).get(name, kind)
        if current is not kind:
            continue  # a root's type cannot change in Yjs; leave it as it is
        _restore(doc.get(name, type=kind), old.get(name, type=kind))


def _restore(target: Any, source: Any) -> None:
    if isinstance(target, Text):
        _replace_whole(target, str(source))
    elif isinstance(target, Map):
        wanted = source.to_py()
        for key in set(target.keys()) - set(wanted):
            del target[key]
        for key, value in wanted.items():
            if key not in target or target[key] != value:
                target[key] = value
    elif isinstance(target, Array):
        if target.to_py() != source.to_py():
            _clear(target)
            target.extend(source.to_py())
    elif isinstance(target, XmlFragment) and str(target) != str(source):
        _clear(target)
        for child in source.children:
            target.children.append(_copy_xml(child))


def _replace_whole(target: Text, wanted: str) -> None:
    if str(target) == wanted:
        return
    text.replace(target, "")
    if wanted:
        target.insert(0, wanted)


def _clear(target: Any) -> None:
    if isinstance(target, Text):
        text.replace(target, "")
    elif isinstance(target, Map):
        for key in list(target.keys()):
            del target[key]
    elif isinstance(target, Array):
        del target[0 : len(target)]
    elif isinstance(target, XmlFragment):
        del target.children[0 : len(target.children)]


def _copy_xml(node: Any) -> Any:
    if isinstance(node, XmlText):
        return XmlText(str(node))
    return XmlElement(
        node.tag, dict(node.attributes), [_copy_xml(child) for child in node.children]
    )
