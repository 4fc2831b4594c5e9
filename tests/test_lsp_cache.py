from lsp_server.completion.cache import PREFIX_CHARS, SuggestionCache
from lsp_server.outcomes import NoSuggestion, Suggestion


def suggestion(text, lead="", trail=""):
    return Suggestion(lead, trail, text, "rest_of_line", 0.5)


def test_repeat_hits_and_typing_along_gets_the_rest():
    cache = SuggestionCache()
    cache.put("python", "x = ", "\n", suggestion("foo(1)", trail=""), invoked=False)
    assert cache.get("python", "x = ", "\n", False).text == "foo(1)"
    assert cache.get("python", "x = fo", "\n", True).text == "o(1)"
    assert cache.get("python", "x = fox", "\n", False) is None
    assert cache.get("python", "x = fo", "", False) is None  # the suffix changed
    assert cache.get("rust", "x = ", "\n", False) is None


def test_lead_is_typed_along_too():
    cache = SuggestionCache()
    cache.put("python", "def f():\n  ", ")", suggestion("    return 1", lead="  ", trail=")"), invoked=True)
    rest = cache.get("python", "def f():\n    re", ")", True)
    assert rest == Suggestion("", ")", "turn 1", "rest_of_line", 0.5)


def test_nothing_is_cached_per_invocation_kind():
    cache = SuggestionCache()
    cache.put("python", "# a comment", "", NoSuggestion(), invoked=False)
    assert cache.get("python", "# a comment", "", False) == NoSuggestion()
    assert cache.get("python", "# a comment", "", True) is None


def test_key_uses_the_text_near_the_cursor():
    cache = SuggestionCache()
    far = "a" * PREFIX_CHARS
    cache.put("python", "b" + far, "", suggestion("x"), invoked=True)
    assert cache.get("python", "c" + far, "", True).text == "x"


def test_least_recently_used_entries_go_first():
    cache = SuggestionCache(size=2)
    cache.put("p", "1", "", suggestion("a"), invoked=True)
    cache.put("p", "2", "", suggestion("b"), invoked=True)
    cache.get("p", "1", "", True)
    cache.put("p", "3", "", suggestion("c"), invoked=True)
    assert cache.get("p", "2", "", True) is None
    assert cache.get("p", "1", "", True) is not None and len(cache) == 2
