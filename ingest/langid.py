"""Which language an article is in, from its words, when its feed does not say (or says wrong): pure.

`identify_language(text, script)` asks py3langid (a naive Bayes model over byte n-grams that
ships inside the package: nothing is downloaded) to choose among the languages written in the
text's script, so Ukrainian is told from Russian and Persian or Urdu from Arabic, and a text
whose script is clear always gets a language of that script:

  * Cyrillic: ru, uk, be, bg, mk, sr, kk; "ru" when the model is unsure (never None);
  * Arabic script: ar, fa, ur, ps; "ar" when unsure (never None);
  * Latin: en and the languages our feeds most often carry beside it; "en" when unsure (short
    headlines: "Mapping the proteome"), the only Latin-script language whose spellings the
    watchlists carry;
  * no clear script (fewer than 20 letters, or a mix): None.

Measured on tests/data/langid (50 texts per language, ar/en/ru/uk/fa/ur, headline and teaser
sized): see tests/ingest/test_langid.py and docs/ingest.md.
"""

from __future__ import annotations

import functools

CANDIDATES = {
    "cyrillic": ("ru", "uk", "be", "bg", "mk", "sr", "kk"),
    "arabic": ("ar", "fa", "ur", "ps"),
    "latin": ("en", "fr", "de", "es", "it", "pt", "nl", "tr", "pl", "id", "sv", "ro", "cs", "hu"),
}
FALLBACK = {"cyrillic": "ru", "arabic": "ar", "latin": "en"}
MIN_CONFIDENCE = 0.5  # the model's normalised probability below which its answer is not taken
SAMPLE_CHARS = 1000


@functools.cache
def _identifier(script: str):
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(CANDIDATES[script]))
    return identifier


def identify_language(text: str, script: str | None) -> str | None:
    """The language of `text`, among those written in `script` ("cyrillic", "arabic", "latin";
    the dominant script of the text, see ingest.parse.dominant_script); None when unknown."""
    if script not in CANDIDATES:
        return None
    lang, confidence = _identifier(script).classify(text[:SAMPLE_CHARS])
    if confidence < MIN_CONFIDENCE:
        return FALLBACK[script]
    return lang


def warm_up() -> None:
    """Load the model now (about a second), not on the first article."""
    for script in CANDIDATES:
        _identifier(script)
