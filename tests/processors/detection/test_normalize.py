"""Table tests for every normalisation rule, and for the offset map back to the original text."""

import random

import pytest

from processors.detection.normalize import code_variants, normalize, normalize_term


@pytest.mark.parametrize("raw, expected", [
    # case folding and NFKC
    ("THAAD Iron Dome", "thaad iron dome"),
    ("ＴＨＡＡＤ", "thaad"),  # full-width letters
    ("𝐒-𝟒𝟎𝟎", "s 400"),  # mathematical bold letters and digits
    ("İstanbul", "istanbul"),  # dotted capital I lower-cases to one letter, not two
    ("Défense", "defense"),  # Latin accents removed
    ("e\u0301", "e"),  # decomposed accent
    ("и\u0306", "й"),  # decomposed Cyrillic short i is composed, never stripped to и
    ("ﻻ", "لا"),  # presentation-form ligature
    ("…", "..."),
    # Arabic: diacritics, tatweel, alef variants, ya, ta marbuta, hamza carriers
    ("زِيَارَةٌ", "زياره"),
    ("صفقـــة", "صفقه"),
    ("أ إ آ ٱ ا", "ا ا ا ا ا"),
    ("مصطفى", "مصطفي"),
    ("مسؤول", "مسوول"),
    ("رئيس", "رييس"),
    ("ی ک", "ي ك"),  # Persian yeh and kaf
    ("٢٠٢٤ ۱۴۰۳", "2024 1403"),  # Arabic-Indic and Persian digits
    # Russian
    ("Провёл ЁЖ", "провел еж"),
    # dashes, hyphens, odd spaces, invisible characters
    ("S-400", "s 400"),
    ("S\u2011400", "s 400"),  # non-breaking hyphen
    ("S\u2013400 S\u2014400 S\u2212400", "s 400 s 400 s 400"),  # en dash, em dash, minus
    ("S\u00a0400", "s 400"),  # no-break space
    ("S\u202f400", "s 400"),  # narrow no-break space
    ("S  \t 400", "s 400"),  # runs of spaces collapse
    ("S\v400 S\f400 С\r400", "s 400 s 400 с 400"),  # ASCII control spaces, in a non-ASCII text too
    ("air\u00addefence", "airdefence"),  # soft hyphen is invisible
    ("ab\u200bcd\u200fef\ufeff", "abcdef"),  # zero-width space, RLM, BOM
    ("line one\u2028line two", "line one\nline two"),
    ("David\u2019s Sling", "david's sling"),  # typographic apostrophe
])
def test_normalisation_rules(raw, expected):
    assert normalize(raw).text == expected


@pytest.mark.parametrize("raw", [
    "S-400", "С-400", "إس-400", "اس-400", "إس-٤٠٠", "S\u2011400", "Ѕ-400", "s400", "S 400", "С400",
])
def test_s400_spellings_normalise_to_a_code_variant_of_the_same_term(raw):
    latin = set(code_variants(normalize_term("S-400")))
    arabic = set(code_variants(normalize_term("اس-400")))
    assert normalize_term(raw) in latin | arabic


def test_code_variants_cover_separator_and_cyrillic_lookalikes():
    variants = code_variants("s 400")
    assert {"s 400", "s400", "с 400", "ѕ 400", "с400"} <= set(variants)
    assert code_variants("air defence") == ("air defence",)  # ordinary words are left alone


@pytest.mark.parametrize("raw, norm_span, surface", [
    ("The S\u2011400 arrived", (4, 9), "S\u2011400"),
    ("وبالـصفقةِ الكبرى", (0, 8), "وبالـصفقةِ"),  # tatweel inside, trailing kasra carried along
    ("x  \u200b  ﻻ y", (2, 4), "ﻻ"),  # collapsed spaces and a dropped ZWSP before a ligature
    ("زِيَارَةٌ رسمية", (0, 5), "زِيَارَةٌ"),
    ("и\u0306од", (0, 3), "и\u0306од"),
    ("𝐒-𝟒𝟎𝟎 and", (0, 5), "𝐒-𝟒𝟎𝟎"),
])
def test_offsets_map_back_to_the_original_text(raw, norm_span, surface):
    norm = normalize(raw)
    start, end = norm.span(*norm_span)
    assert raw[start:end] == surface


def test_ascii_text_keeps_identity_offsets():
    norm = normalize("Russia delivered S-400 systems")
    assert norm.span(17, 22) == (17, 22)
    assert norm.maps == ()


_TRICKY = ("aS-4 0", "С", "Ѕ", "\u2011", "\u00a0", "  ", "\u200b", "ـ", "َ", "ً", "ة", "أ", "ﻻ", "…", "İ", "ß",
           "e\u0301", "и\u0306", "٤", "𝐒", "\n", "ё", "ﷺ", "½", "’")


@pytest.mark.parametrize("seed", range(40))
def test_offset_map_is_monotonic_and_in_bounds_on_random_text(seed):
    rng = random.Random(seed)
    raw = "".join(rng.choice(_TRICKY) for _ in range(rng.randint(1, 40)))
    norm = normalize(raw)
    previous = (0, 0)
    for start in range(len(norm.text) + 1):
        for end in range(start, len(norm.text) + 1):
            o_start, o_end = norm.span(start, end)
            assert 0 <= o_start <= o_end <= len(raw)
            if end > start:
                assert o_end > o_start  # a non-empty match never maps to nothing
        assert norm.span(start, start + 1 if start < len(norm.text) else start)[0] >= previous[0]
        previous = norm.span(start, start)
    # A span covering a whole normalised character maps to text that normalises to that character.
    for index, char in enumerate(norm.text):
        if char.strip():
            o_start, o_end = norm.span(index, index + 1)
            assert char in normalize(raw[o_start:o_end]).text
