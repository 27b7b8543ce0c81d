"""`nac oui import` and `nac oui status`: IEEE CSV and manuf files, validated whole, applied
atomically, and the registry snapshot they make (issue 3, "Updates for air-gapped networks")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import nac.resources
from nac.app.facade import open_store
from nac.cli.main import app
from nac.registry.ieee import parse_registry_file
from nac.registry.oui import Registry
from nac.resources import load_active_registry
from nac.store import Store

HEADER = "Registry,Assignment,Organization Name,Organization Address\n"
# Addresses are quoted and span lines, as in the IEEE's own files.
OUI_CSV = HEADER + (
    'MA-L,00E0FC,"HUAWEI TECHNOLOGIES CO.,LTD","No.2 Xin Cheng Road,\nDongguan  CN  523808"\n'
    "MA-L,001122,Acme Corp,Somewhere US\n"
    "MA-L,ACBBCC,Newcomer Networks,Elsewhere DE\n"
)
MAM_CSV = HEADER + (
    'MA-M,70B3D51,"Twenty Eight, Ltd.","1 Road\nTown GB"\nMA-M,0055DA1,KoolPOS Inc.,Somewhere\n'
)
OUI36_CSV = HEADER + 'MA-S,70B3D5123,Thirty Six GmbH,"Strasse 1\nBerlin DE"\n'
IAB_CSV = HEADER + "IAB,0050C2000,T.L.S. Corp.,Somewhere\n"


@pytest.fixture(scope="module")
def bundled() -> Registry:
    return nac.resources.load_registry()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundled: Registry) -> None:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    # Parse the bundled registry once per module (speed only: the same data).
    monkeypatch.setattr(nac.resources, "load_registry", lambda: bundled)


class Nac:
    def __init__(self, db: str) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, stdin: str | None = None) -> Any:
        result = self.runner.invoke(app, [*args, "--db", self.db], input=stdin)
        assert result.exit_code == code, (
            f"nac {' '.join(args)} exited {result.exit_code}, expected {code}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
        )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def vendor(self, mac: str) -> tuple[str | None, str | None, int | None]:
        out = self.json("check", mac)
        return out["vendor"], out["prefix"], out["prefix_bits"]


@pytest.fixture
def nac_cli(tmp_path: Path) -> Nac:
    db = str(tmp_path / "test.db")
    open_store(db).close()  # `nac check` and `nac oui status` read a database; they make none
    return Nac(db)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- the bundled registry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mac", "organization", "bits"),
    [
        ("00:55:DA:1A:BC:DE", "KoolPOS Inc.", 28),  # MA-M under the IEEE's own 00:55:DA
        ("70:B3:D5:00:1A:BC", "SOREDI touch systems GmbH", 36),  # MA-S under 70:B3:D5
        ("00:50:C2:00:0A:BC", "T.L.S. Corp.", 36),  # IAB under 00:50:C2
    ],
)
def test_check_block_resolves_to_real_assignee_not_the_ieee(
    nac_cli: Nac, mac: str, organization: str, bits: int
) -> None:
    vendor, _, prefix_bits = nac_cli.vendor(mac)
    assert vendor == organization
    assert prefix_bits == bits
    assert "registration authority" not in (vendor or "").lower()


def test_status_on_fresh_database_is_the_bundled_snapshot(nac_cli: Nac, bundled: Registry) -> None:
    status = nac_cli.json("oui", "status")
    active = status["active"]
    assert active["bundled"] is True
    assert active["snapshot"] == bundled.snapshot.id
    assert active["counts"] == bundled.counts()
    assert active["imported"] is None
    assert status["older"] == []
    assert status["registry_version"] == 0


# -- importing --------------------------------------------------------------------------------
# These files are tiny: each import removes most of a registry in force, so it takes --replace
# (tests/test_registry_safety.py has the refusal itself).


def test_import_ieee_csvs_changes_lookups_and_reports_the_diff(nac_cli: Nac, tmp_path: Path) -> None:
    files = [
        write(tmp_path, "oui.csv", OUI_CSV),
        write(tmp_path, "mam.csv", MAM_CSV),
        write(tmp_path, "oui36.csv", OUI36_CSV),
        write(tmp_path, "iab.csv", IAB_CSV),
    ]
    nac_cli(
        "oui", "import", "--replace", *files, "--date", "2026-11-01"
    )  # the bundled registry, replaced whole
    assert nac_cli.vendor("ac:bb:cc:00:00:01") == ("Newcomer Networks", "AC:BB:CC", 24)
    assert nac_cli.vendor("70:b3:d5:12:34:56") == ("Thirty Six GmbH", "70:B3:D5:12:3", 36)
    assert nac_cli.vendor("70:b3:d5:1f:00:00") == ("Twenty Eight, Ltd.", "70:B3:D5:1", 28)
    assert nac_cli.vendor("00:00:0c:01:02:03") == (None, None, None)  # Cisco: not in these files

    # A second MA-L file: one prefix reassigned, one removed, one added; the rest untouched.
    oui2 = HEADER + (
        'MA-L,00E0FC,"HUAWEI TECHNOLOGIES CO.,LTD",Dongguan CN\n'
        "MA-L,001122,Roadrunner Ltd,Desert US\n"
        'MA-L,DDEEFF,"Huawei Device Co.,Ltd.",Dongguan CN\n'
    )
    nac_cli("rules", "add", "--vendor", "huawei", "--action", "reject")
    report = nac_cli.json(
        "oui", "import", "--replace", write(tmp_path, "oui2.csv", oui2), "--date", "2026-12-01"
    )
    assert report["replaced"] == ["MA-L"]
    added = [(r["prefix"], r["organization"]) for r in report["added"]]
    assert added == [("DD:EE:FF", "Huawei Device Co.,Ltd.")]
    removed = [(r["prefix"], r["organization"]) for r in report["removed"]]
    assert removed == [("AC:BB:CC", "Newcomer Networks")]
    assert [(r["prefix"], r["old"], r["new"]) for r in report["reassigned"]] == [
        ("00:11:22", "Acme Corp", "Roadrunner Ltd")
    ]
    assert [(w["prefix"], w["rules"]) for w in report["watch"]] == [("DD:EE:FF", ["reject-vendor-huawei"])]
    assert report["counts"] == {"MA-L": 3, "MA-M": 2, "MA-S": 1, "IAB": 1}
    assert nac_cli.vendor("00:11:22:33:44:55")[0] == "Roadrunner Ltd"
    assert nac_cli.vendor("ac:bb:cc:00:00:01") == (None, None, None)
    assert nac_cli.json("check", "dd:ee:ff:00:00:01")["action"] == "reject"
    # MA-M, MA-S and IAB were not in the file and are kept.
    assert nac_cli.vendor("70:b3:d5:12:34:56")[0] == "Thirty Six GmbH"
    assert nac_cli.vendor("00:50:c2:00:0a:bc")[0] == "T.L.S. Corp."


def test_import_only_mam_keeps_the_other_registries(nac_cli: Nac, tmp_path: Path, bundled: Registry) -> None:
    mam = HEADER + "MA-M,0055DA1,Koolpos Renamed Inc,Somewhere\nMA-M,ACBBCC1,Brand New Block,Here\n"
    report = nac_cli.json("oui", "import", "--replace", write(tmp_path, "mam.csv", mam))
    assert report["replaced"] == ["MA-M"]
    counts = bundled.counts()
    assert report["counts"] == {**counts, "MA-M": 2}
    assert len(report["removed"]) == counts["MA-M"] - 1
    assert [r["new"] for r in report["reassigned"]] == ["Koolpos Renamed Inc"]
    assert nac_cli.vendor("00:55:da:1a:bc:de") == ("Koolpos Renamed Inc", "00:55:DA:1", 28)
    assert nac_cli.vendor("ac:bb:cc:1f:ff:ff") == ("Brand New Block", "AC:BB:CC:1", 28)
    # MA-L, MA-S and IAB come from the bundled snapshot still.
    assert nac_cli.vendor("00:50:c2:00:0a:bc")[0] == "T.L.S. Corp."
    assert nac_cli.vendor("70:b3:d5:00:1a:bc")[0] == "SOREDI touch systems GmbH"


def test_import_text_output_lists_changes(nac_cli: Nac, tmp_path: Path) -> None:
    mam = HEADER + "MA-M,0055DA1,Koolpos Renamed Inc,Somewhere\nMA-M,ACBBCC1,Brand New Block,Here\n"
    out = nac_cli("oui", "import", "--replace", write(tmp_path, "mam.csv", mam)).stdout
    assert "read mam.csv: ieee-csv, 2 assignments (MA-M)" in out
    assert "+ AC:BB:CC:1/28 MA-M  Brand New Block" in out
    assert "~ 00:55:DA:1/28 MA-M  KoolPOS Inc. -> Koolpos Renamed Inc" in out
    assert "more (--json lists them all)" in out  # thousands of MA-M blocks removed


def test_import_reports_new_prefix_that_looks_like_a_targeted_family(nac_cli: Nac, tmp_path: Path) -> None:
    nac_cli("rules", "add", "--vendor", "dahua", "--action", "reject")
    mam = HEADER + "MA-M,ACBBCC1,Shenzhen Dahua Lookalike Co,Here\nMA-M,ACBBCC2,Zhejiang Dahua Vision,There\n"
    report = nac_cli.json("oui", "import", "--replace", write(tmp_path, "mam.csv", mam))
    watch = {w["organization"]: (w["rules"], w["looks_like"]) for w in report["watch"]}
    assert watch == {
        "Shenzhen Dahua Lookalike Co": ([], ["dahua"]),
        "Zhejiang Dahua Vision": (["reject-vendor-dahua"], []),
    }


def test_import_manuf_file(nac_cli: Nac, tmp_path: Path) -> None:
    manuf = "00:E0:FC\tHuawei\tHuawei Technologies Co.,Ltd\n70:B3:D5:12:30:00/36\tSix\tThirty Six GmbH\n"
    report = nac_cli.json("oui", "import", "--replace", write(tmp_path, "manuf", manuf), "--date", "2026-11")
    assert report["files"][0]["format"] == "manuf"
    assert report["replaced"] == ["MA-L", "MA-S"]
    assert report["date"] == "2026-11"
    assert nac_cli.vendor("70:b3:d5:12:34:56")[0] == "Thirty Six GmbH"


def test_status_after_import_shows_snapshot_and_older_ones(
    nac_cli: Nac, tmp_path: Path, bundled: Registry
) -> None:
    mam = write(tmp_path, "mam.csv", HEADER + "MA-M,ACBBCC1,Brand New Block,Here\n")
    report = nac_cli.json("oui", "import", "--replace", mam, "--date", "2026-11-02")
    status = nac_cli.json("oui", "status")
    active = status["active"]
    assert active["snapshot"] == report["snapshot"]
    assert active["source"] == "mam.csv"
    assert active["date"] == "2026-11-02"
    assert len(active["sha256"]) == 64
    assert active["counts"]["MA-M"] == 1
    assert active["imported"] is not None
    assert active["bundled"] is False
    assert [row["snapshot"] for row in status["older"]] == [bundled.snapshot.id]
    assert status["registry_version"] == 1
    text = nac_cli("oui", "status").stdout
    assert report["snapshot"] in text
    assert bundled.snapshot.id in text
    # The history snapshot id a decision now records is the imported one.
    assert nac_cli.json("check", "ac:bb:cc:10:00:00")["snapshot"] == report["snapshot"]


def test_load_active_registry_and_version_follow_imports(tmp_path: Path, bundled: Registry) -> None:
    db = str(tmp_path / "test.db")
    store = Store(db)
    assert store.registry_version() == 0
    assert load_active_registry(store).snapshot.id == bundled.snapshot.id
    Nac(db)("oui", "import", "--replace", write(tmp_path, "iab.csv", IAB_CSV))
    assert store.registry_version() == 1
    registry = load_active_registry(store)
    assert registry.snapshot.source == "iab.csv"
    assert registry.counts()["IAB"] == 1
    assert registry.lookup(0x0050C2000ABC) is not None
    store.close()


def test_import_same_files_in_any_order_gives_the_same_snapshot(tmp_path: Path) -> None:
    a = write(tmp_path, "mam.csv", MAM_CSV)
    b = write(tmp_path, "iab.csv", IAB_CSV)
    one = Nac(str(tmp_path / "one.db")).json("oui", "import", "--replace", a, b)
    two = Nac(str(tmp_path / "two.db")).json("oui", "import", "--replace", b, a)
    assert one["sha256"] == two["sha256"]


# -- refusing bad files -----------------------------------------------------------------------

MALFORMED = [
    ("bad hex", HEADER + "MA-L,00E0FC,Good,x\nMA-L,00E0FG,Bad,x\n", 3, "not hexadecimal"),
    ("wrong digit count", HEADER + "MA-M,00E0FC,Short,x\n", 2, "7 hex digits"),
    ("wrong header", "Registry,Assignment,Organization\nMA-L,00E0FC,Good,x\n", 1, "header"),
    ("wrong registry type", HEADER + "MA-L,00E0FC,Good,x\nMA-X,00E0FD,Bad,x\n", 3, "MA-X"),
    ("truncated quoted field", HEADER + 'MA-L,00E0FC,Good,x\nMA-L,00E0FD,Bad,"Street 1\nTown\n', 3, "quoted"),
    ("missing field", HEADER + "MA-L,00E0FC,Good\n", 2, "3 fields"),
    ("empty organisation", HEADER + "MA-L,00E0FC, ,x\n", 2, "organisation"),
    ("junk after a quote", HEADER + 'MA-L,00E0FC,"Good"x,y\n', 2, "expected"),
    ("only a header", HEADER, None, "no assignments"),
]


@pytest.mark.parametrize(("why", "text", "line", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_import_malformed_csv_is_refused_and_changes_nothing(
    nac_cli: Nac, tmp_path: Path, why: str, text: str, line: int | None, message: str
) -> None:
    good = write(tmp_path, "mam.csv", MAM_CSV)
    bad = write(tmp_path, "oui.csv", text)
    status = nac_cli.json("oui", "status")
    before = nac_cli.json("check", "00:55:da:1a:bc:de")
    result = nac_cli("oui", "import", good, bad, code=2)
    where = f"{bad}, line {line}" if line is not None else bad
    assert where in result.stderr
    assert message in result.stderr
    assert nac_cli.json("oui", "status") == status
    assert nac_cli.json("check", "00:55:da:1a:bc:de") == before


def test_import_malformed_manuf_names_the_line(nac_cli: Nac, tmp_path: Path) -> None:
    bad = write(tmp_path, "manuf", "00:E0:FC\tHuawei\tHuawei\nZZ:E0:FC\tBad\tBad Corp\n")
    result = nac_cli("oui", "import", bad, code=2)
    assert f"{bad}, line 2" in result.stderr


def test_import_missing_file_and_bad_date_are_refused(nac_cli: Nac, tmp_path: Path) -> None:
    assert "cannot read" in nac_cli("oui", "import", str(tmp_path / "nope.csv"), code=2).stderr
    good = write(tmp_path, "mam.csv", MAM_CSV)
    assert "--date" in nac_cli("oui", "import", good, "--date", "yesterday", code=2).stderr
    assert nac_cli.json("oui", "status")["registry_version"] == 0


def test_parse_registry_file_keeps_the_first_of_repeated_blocks() -> None:
    data = (HEADER + "MA-L,080030,First Holder,x\nMA-L,080030,Second Holder,y\n").encode()
    parsed = parse_registry_file(data, name="oui.csv")
    assert [a.organization for a in parsed.assignments] == ["First Holder"]
    assert parsed.duplicates == 1


def test_parse_registry_file_reads_a_byte_order_mark_and_crlf() -> None:
    data = ("\ufeff" + HEADER + 'MA-S,70B3D5123,"Thirty, Six",x\n').replace("\n", "\r\n").encode()
    parsed = parse_registry_file(data, name="oui36.csv")
    assert parsed.assignments[0].organization == "Thirty, Six"
    assert parsed.registries == {"MA-S"}


def test_parse_registry_file_refuses_bad_utf8_with_the_line() -> None:
    data = (HEADER + "MA-L,00E0FC,Good,x\n").encode() + b"MA-L,00E0FD,Bad \xff,x\n"
    with pytest.raises(Exception, match=r"oui\.csv, line 3: not UTF-8"):
        parse_registry_file(data, name="oui.csv")
