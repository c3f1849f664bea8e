"""The label of an automatic version names who was in the note."""

from persistence.versions import MAX_LABEL_CHARS, auto_label


def test_automatic_versions_are_named_after_who_was_editing():
    assert auto_label([]) is None
    assert auto_label(["Ada"]) == "Saved automatically while Ada was editing"
    assert (
        auto_label(["Ada", "Bob", "Cy"]) == "Saved automatically while Ada, Bob and Cy were editing"
    )
    long = auto_label(["x" * 40] * 10)
    assert long is not None and len(long) <= MAX_LABEL_CHARS
