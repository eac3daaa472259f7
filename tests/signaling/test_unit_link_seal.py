"""signaling/link_seal.py: an invite link kept for a reminder opens only with the same session
secret and for the same appointment."""

from __future__ import annotations

import pytest

from signaling.link_seal import LinkSeal

LINK = "https://praxis.example/j/" + "T" * 43


def test_a_sealed_link_opens_again_and_is_not_readable():
    sealed = LinkSeal("secret-one").seal(LINK, 7)
    assert "T" * 10 not in sealed and sealed.startswith("v1.")
    assert LinkSeal("secret-one").open(sealed, 7) == LINK


def test_sealing_twice_gives_different_text():
    seal = LinkSeal("secret-one")
    assert seal.seal(LINK, 7) != seal.seal(LINK, 7)


def test_another_session_secret_cannot_open_it():
    assert LinkSeal("secret-two").open(LinkSeal("secret-one").seal(LINK, 7), 7) is None


def test_a_link_copied_to_another_appointments_row_does_not_open():
    assert LinkSeal("secret-one").open(LinkSeal("secret-one").seal(LINK, 7), 8) is None


@pytest.mark.parametrize("sealed", ["", "v1.", "v1.!!!", "v2.abcd", "v1." + "A" * 80])
def test_damaged_text_opens_to_nothing(sealed):
    assert LinkSeal("secret-one").open(sealed, 7) is None


def test_an_empty_session_secret_is_refused():
    with pytest.raises(ValueError):
        LinkSeal("")
