"""The query language: text to terms, or QueryError saying where, never anything else."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netlog.query.language import MAX_QUERY, MAX_TERMS, QueryError, Term, parse_field, parse_query


class TestTerms:
    """Each kind of term parses to what the engine needs."""

    def test_words_and_phrases_match_text_lower_cased(self):
        assert parse_query('Timeout "Connection Reset"') == [
            Term("text", ("text",), "timeout"),
            Term("text", ("text",), "connection reset"),
        ]

    def test_comparisons_on_top_level_keys_and_fields(self):
        assert parse_query("logger=app peer!=1.2.3.4:5 user.id=7 fields.level=x") == [
            Term("=", ("logger",), "app"),
            Term("!=", ("peer",), "1.2.3.4:5"),
            Term("=", ("fields", "user", "id"), "7"),
            Term("=", ("fields", "level"), "x"),
        ]

    def test_numbers(self):
        assert parse_query("ms>12.5 n<=-3 big>=1e3 small<.5") == [
            Term(">", ("fields", "ms"), 12.5),
            Term("<=", ("fields", "n"), -3.0),
            Term(">=", ("fields", "big"), 1000.0),
            Term("<", ("fields", "small"), 0.5),
        ]

    def test_level_by_rank_and_by_name(self):
        assert parse_query("level>=warning level<ERR level=WARNING") == [
            Term(">=", ("level",), 30.0),
            Term("<", ("level",), 40.0),
            Term("=", ("level",), "warning"),
        ]

    def test_has_and_negation(self):
        assert parse_query('has:user -has:exc -timeout -"a b" -level=debug') == [
            Term("has", ("fields", "user"), ""),
            Term("has", ("exc",), "", negated=True),
            Term("text", ("text",), "timeout", negated=True),
            Term("text", ("text",), "a b", negated=True),
            Term("=", ("level",), "debug", negated=True),
        ]

    def test_quoted_values_and_escapes(self):
        assert parse_query(r'path="/a b" msg="say \"hi\""') == [
            Term("=", ("fields", "path"), "/a b"),
            Term("=", ("fields", "msg"), 'say "hi"'),
        ]

    def test_words_that_look_like_comparisons_inside_quotes(self):
        assert parse_query('"a=b" x!y http://h/p?q') == [
            Term("text", ("text",), "a=b"),
            Term("text", ("text",), "x!y"),
            Term("text", ("text",), "http://h/p?q"),
        ]

    def test_empty_query_is_no_terms(self):
        assert parse_query("   ") == []

    def test_a_lone_dash_is_a_word(self):
        assert parse_query("-") == [Term("text", ("text",), "-")]


class TestErrors:
    """A bad query says what and where."""

    @pytest.mark.parametrize(
        ("query", "says"),
        [
            ('ok "abc', "position 4: a quote that is never closed"),
            ("level>=bogus", "'bogus' is not a level"),
            ("a n>abc", "position 3: 'abc' is not a number"),
            ("=5", "needs a field name"),
            ("has:", "has: needs a field name"),
            ("a..b=1", "'a..b' is not a field name"),
            ('""', "an empty phrase"),
            ("x<", "needs a number"),
            ("n>inf", "not a number"),
            ("n>1e999", "not a finite number"),
            ("a;drop=1", "is not a field name"),
        ],
    )
    def test_message(self, query, says):
        with pytest.raises(QueryError, match=says.replace("(", r"\(")):
            parse_query(query)

    def test_limits(self):
        with pytest.raises(QueryError, match="longer than"):
            parse_query("a" * (MAX_QUERY + 1))
        with pytest.raises(QueryError, match="more than"):
            parse_query(" ".join(["a"] * (MAX_TERMS + 1)))

    def test_field_names(self):
        assert parse_field("logger") == ("logger",)
        assert parse_field("a.b") == ("fields", "a", "b")
        for bad in ("", "a.", "a b", "a'b", "$.x[0]"):
            with pytest.raises(QueryError):
                parse_field(bad)


ALPHABET = st.sampled_from(list('abcXY01 .-_"\\=!<>:has\t\u00e9\u2028\x00'))


class TestProperties:
    """Whatever the text: terms, or QueryError, never another exception."""

    @settings(max_examples=2000, deadline=None)
    @given(st.text(ALPHABET, max_size=40))
    def test_parse_or_query_error(self, text):
        try:
            terms = parse_query(text)
        except QueryError as exc:
            message = str(exc)
            assert message
            return
        for term in terms:
            assert term.op in {"text", "=", "!=", ">", ">=", "<", "<=", "has"}
            assert term.key
            if term.op in {">", ">=", "<", "<="}:
                assert isinstance(term.value, float)

    @settings(max_examples=500, deadline=None)
    @given(st.text(max_size=60))
    def test_any_unicode(self, text):
        with contextlib.suppress(QueryError):
            parse_query(text)

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(
            st.characters(
                blacklist_characters='"\\', blacklist_categories=("Zs", "Cc", "Zl", "Zp")
            ),
            min_size=1,
            max_size=20,
        )
    )
    def test_a_quoted_phrase_comes_back_as_its_text(self, phrase):
        assert parse_query('"' + phrase + '"') == [Term("text", ("text",), phrase.lower())]
