"""shared.messages: job error messages within a limit, cut where a reader expects it."""
from shared.errors import MESSAGE_MAX_CHARS
from shared.messages import bounded, listing


def test_bounded_keeps_what_fits_and_marks_a_cut():
    assert bounded("x" * MESSAGE_MAX_CHARS) == "x" * MESSAGE_MAX_CHARS
    assert bounded("abcdefghij", 8) == "abcde..."
    assert len(bounded("y" * 100_000)) == MESSAGE_MAX_CHARS


def test_listing_counts_the_items_that_do_not_fit():
    assert listing("missing: ", ["a", "b", "c"]) == "missing: a, b, c"
    assert listing("missing: ", []) == "missing: "
    assert listing("missing: ", ["a", "b", "c", "d"], 19) == "missing: a, b, c, d"  # all fit: no count
    letters = list("abcdefgh")  # 31 characters in all
    # "missing: a, b" (13) + " and 6 more" (11) is 24; one more item would not fit
    assert listing("missing: ", letters, 24) == "missing: a, b and 6 more"
    assert listing("missing: ", letters, 23) == "missing: a and 7 more"
    names = [f"{i:03d}" + "n" * 197 for i in range(100)]
    text = listing("uploads never arrived: ", names)
    assert len(text) <= MESSAGE_MAX_CHARS and text.endswith(" and 91 more")


def test_listing_shortens_a_first_item_that_cannot_fit():
    assert listing("missing: ", ["x" * 50, "b"], 20) == "missing: xxxxxxxx..."
