"""Vendor families: what they cover and what they may miss (`nac vendors show`, `nac vendors
review`; issue 3, "Vendor families")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import nac.resources
from nac.app.facade import open_store
from nac.cli.main import app
from nac.registry.families import Family, parse_families
from nac.registry.oui import Registry, registry_from_manuf
from nac.registry.vendors import Coverage, PatternHits, review, show
from nac.resources import load_families

# Every spelling drift and false friend the families have to get right, in manuf format.
MANUF = "\n".join(
    [
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "00:E0:FD\tHuaweiTechno\tHuawei Technologies Co.,Ltd",
        "00:E0:FE\tHuaweiDevice\tHuawei Device Co., Ltd.",
        "00:E0:FF\tHiSilicon\tHisilicon Technologies Co., Ltd",
        "00:11:01\tShuaweiyuan\tShuaweiyuan Ltd",
        "00:11:02\tSymantec\tSymantec Corporation",
        "00:22:01\tHonor\tHonor Device Co., Ltd.",
        "00:22:02\tShenzhenHonor\tShenzhen Honor Electronic Co.,Ltd",
        "00:33:01\tzte\tzte corporation",
        "00:33:02\tZTE\tZTE CORPORATION",
        "00:33:03\tShanghaiZte\tShanghai Zte Technologies Co.,Ltd",
        "00:44:01\tDahua\tZhejiang Dahua Technology Co., Ltd.",
        "00:44:02\tDahua\tZhejiang Dahua Technologyco.,Ltd",
        "00:44:03\tDahuaZhilian\tZhejiang Dahua Zhilian Co.,Ltd",
        "70:B3:D5:10/28\tDahuaScale\tShanghai Dahua Scale Factory",
        "00:55:01\tHikvision\tHangzhou Hikvision Digital Technology Co.,Ltd.",
        "00:55:02\tEzviz\tHangzhou Ezviz Software Co.,Ltd.",
        "70:B3:D5:12:30:00/36\tHikrobot\tHangzhou Hikrobot Technology Co., Ltd.",
        "00:66:01\tHytera\tHytera Communications Corporation Limited",
        "00:77:01\tXiaomi\tXiaomi Communications Co Ltd",
        "00:77:02\tXiaomi\tBeijing Xiaomi Mobile Software Co., Ltd",
        "00:88:01\tCisco\tCisco Systems, Inc",
    ]
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


@pytest.fixture(scope="module")
def families() -> dict[str, Family]:
    return load_families()


def covered(family: Family, registry: Registry) -> set[str]:
    return {e.organization for e in family.covered(registry)}


FAMILIES = [
    (
        "huawei",
        {
            "HUAWEI TECHNOLOGIES CO.,LTD",
            "Huawei Technologies Co.,Ltd",
            "Huawei Device Co., Ltd.",
            "Hisilicon Technologies Co., Ltd",
        },
    ),
    ("honor", {"Honor Device Co., Ltd."}),
    ("zte", {"zte corporation", "ZTE CORPORATION"}),
    (
        "dahua",
        {
            "Zhejiang Dahua Technology Co., Ltd.",
            "Zhejiang Dahua Technologyco.,Ltd",
            "Zhejiang Dahua Zhilian Co.,Ltd",
        },
    ),
    (
        "hikvision",
        {
            "Hangzhou Hikvision Digital Technology Co.,Ltd.",
            "Hangzhou Ezviz Software Co.,Ltd.",
            "Hangzhou Hikrobot Technology Co., Ltd.",
        },
    ),
    ("hytera", {"Hytera Communications Corporation Limited"}),
    ("xiaomi", {"Xiaomi Communications Co Ltd", "Beijing Xiaomi Mobile Software Co., Ltd"}),
]


@pytest.mark.parametrize(("key", "organizations"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_covers_all_its_spellings_and_not_its_false_friends(
    registry: Registry, families: dict[str, Family], key: str, organizations: set[str]
) -> None:
    assert covered(families[key], registry) == organizations


def test_dahua_family_excludes_the_scale_factory_that_the_word_dahua_matches(
    registry: Registry, families: dict[str, Family]
) -> None:
    assert "Shanghai Dahua Scale Factory" in {e.organization for e in registry.matching("dahua")}
    assert "Shanghai Dahua Scale Factory" not in covered(families["dahua"], registry)


def test_show_lists_patterns_exclusions_and_counts_per_registry(
    registry: Registry, families: dict[str, Family]
) -> None:
    report = show(families["dahua"], registry)
    assert report.name == "Dahua"
    assert "FCC" in report.basis
    assert report.organization_patterns[0].pattern == "zhejiang dahua"
    assert report.organization_patterns[0].prefixes == 3
    assert report.exclude_organizations == [
        PatternHits(
            pattern="shanghai dahua scale factory",
            organizations=["Shanghai Dahua Scale Factory"],
            prefixes=1,
        )
    ]
    assert report.total == Coverage(organizations=3, prefixes=3, registries={"MA-L": 3})
    hik = show(families["hikvision"], registry)
    assert hik.total.registries == {"MA-L": 2, "MA-S": 1}


def test_review_finds_look_alikes_and_family_entries_matching_nothing(
    registry: Registry, families: dict[str, Family]
) -> None:
    report = review(families, registry)
    uncovered = {(row["family"], row["organization"]): row for row in report["uncovered"]}
    assert set(uncovered) == {
        ("honor", "Shenzhen Honor Electronic Co.,Ltd"),
        ("zte", "Shanghai Zte Technologies Co.,Ltd"),
        ("dahua", "Shanghai Dahua Scale Factory"),
    }
    assert uncovered["dahua", "Shanghai Dahua Scale Factory"]["excluded"] is True
    assert uncovered["zte", "Shanghai Zte Technologies Co.,Ltd"]["shared_words"] == ["zte"]
    assert uncovered["honor", "Shenzhen Honor Electronic Co.,Ltd"]["registries"] == {"MA-L": 1}
    # Neither Symantec (Huawei's review words leave it out) nor a word inside a word.
    assert not any(org in {"Symantec Corporation", "Shuaweiyuan Ltd"} for _, org in uncovered)
    unmatched = {(row["family"], row["field"], row["value"]) for row in report["unmatched"]}
    assert unmatched == {
        ("huawei", "organizations", "huawei symantec"),
        ("hikvision", "organizations", "prama hikvision india"),
    }


def test_review_reports_prefixes_and_exclusions_matching_nothing(registry: Registry) -> None:
    text = """
[acme]
organizations = ["cisco systems"]
prefixes = ["00:88:01", "00:99:99"]
exclude_organizations = ["nobody at all"]
exclude_prefixes = ["70-B3-D5-9"]
"""
    report = review(parse_families(text, origin="test.toml"), registry)
    assert {(row["field"], row["value"]) for row in report["unmatched"]} == {
        ("prefixes", "00:99:99"),
        ("exclude_organizations", "nobody at all"),
        ("exclude_prefixes", "70:B3:D5:9"),
    }


def test_default_review_words_are_the_distinctive_words(registry: Registry) -> None:
    families = parse_families('[d]\norganizations = ["zhejiang dahua", "acme wireless"]\n', origin="t.toml")
    # "zhejiang" is never distinctive; "wireless" is rare in this registry, common in the real one.
    assert show(families["d"], registry)["review_words"] == ["acme", "dahua", "wireless"]
    real = nac.resources.load_registry()
    assert show(families["d"], real)["review_words"] == ["acme", "dahua"]


# -- the commands -----------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: Registry) -> Any:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.setattr(nac.resources, "load_registry", lambda: registry)
    db = str(tmp_path / "test.db")
    open_store(db).close()  # the commands here only read: they never make a database

    def invoke(*args: str, code: int = 0) -> Any:
        result = CliRunner().invoke(app, [*args, "--db", db])
        assert result.exit_code == code, result.stderr
        return result

    return invoke


def test_vendors_show_command(run: Any) -> None:
    report = json.loads(run("vendors", "show", "Dahua", "--json").stdout)
    assert report["family"] == "dahua"
    assert [row["organization"] for row in report["covered"]] == [
        "Zhejiang Dahua Technology Co., Ltd.",
        "Zhejiang Dahua Technologyco.,Ltd",
        "Zhejiang Dahua Zhilian Co.,Ltd",
    ]
    text = run("vendors", "show", "dahua").stdout
    assert "covers 3 prefixes (MA-L 3) of 3 organisations" in text
    assert "'shanghai dahua scale factory': 1 prefixes: Shanghai Dahua Scale Factory" in text


def test_vendors_show_unknown_family_names_the_known_ones(run: Any) -> None:
    result = run("vendors", "show", "acme", code=1)
    assert "no vendor family 'acme'" in result.stderr
    assert "huawei" in result.stderr


def test_vendors_review_command(run: Any) -> None:
    report = json.loads(run("vendors", "review", "--json").stdout)
    assert {row["organization"] for row in report["uncovered"]} >= {"Shanghai Zte Technologies Co.,Ltd"}
    text = run("vendors", "review").stdout
    assert "Shenzhen Honor Electronic Co.,Ltd" in text
    assert "Shanghai Dahua Scale Factory" in text
    assert "[excluded by the family]" in text
    assert "huawei     organizations: huawei symantec" in text
