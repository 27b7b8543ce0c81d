"""A vendor-families file that is wrong is refused with the file, the family and what is wrong;
the shipped file only ever shows the happy path."""

from __future__ import annotations

import pytest

from nac.errors import PolicyError
from nac.registry.families import parse_families


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[huawei\n", "site.toml: "),  # TOML's own message follows
        ("huawei = 1\n", "site.toml: [huawei]: must be a table"),
        ("[huawei]\norganizations = ['Huawei']\nprefix = ['00:E0:FC']\n", "unknown setting(s) prefix"),
        ("[huawei]\norganizations = 'Huawei'\n", "[huawei]: organizations must be a list of names"),
        ("[huawei]\norganizations = ['Huawei', ' ']\n", "[huawei]: organizations must be a list of names"),
        ("[huawei]\nprefixes = ['00:E0']\n", "[huawei]: prefixes: "),
        ("[huawei]\nreview_words = ['hw']\n", "[huawei]: names no organizations or prefixes"),
    ],
    ids=["toml", "not-a-table", "unknown-key", "not-a-list", "blank-name", "bad-prefix", "empty"],
)
def test_a_wrong_family_is_refused_with_where_and_why(text: str, error: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_families(text, origin="site.toml")
    assert error in str(caught.value)
    assert str(caught.value).startswith("site.toml: ")


def test_a_family_reads_its_lists_and_keys_by_normalized_name() -> None:
    families = parse_families(
        "[Huawei]\nname = 'Huawei Technologies'\norganizations = ['HUAWEI TECHNOLOGIES']\n"
        "prefixes = ['00:E0:FC', '70:B3:D5:1']\nexclude_prefixes = ['00:E0:FC:1']\n"
        "basis = '''one\n  line'''\n",
        origin="site.toml",
    )
    family = families["huawei"]
    assert (family.key, family.name) == ("huawei", "Huawei Technologies")
    assert family.organizations == ("HUAWEI TECHNOLOGIES",)
    assert family.prefixes == ((0x00E0FC, 24), (0x70B3D51, 28))
    assert family.exclude_prefixes == ((0x00E0FC1, 28),)
    assert family.basis == "one line"
