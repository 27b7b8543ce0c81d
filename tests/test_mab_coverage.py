"""How each MAB shape reads the device's MAC, called directly: the equipment tests reach
read_mac through a running server, and only for the shapes the shipped profiles use."""

from __future__ import annotations

import pytest

from nac.equipment.mab import MabRead, MabShape, read_mac

MAC = 0x0010A42319C0
OTHER = 0x00E0FC123456
CISCO = MabShape()  # User-Name = the MAC
HUAWEI = MabShape(mac_from="calling-station-id", account="macauth", check="fixed")
EITHER = MabShape(mac_from="either")


def test_user_name_mac_is_read_when_calling_station_id_spells_the_same_mac_otherwise() -> None:
    assert read_mac(b"0010a42319c0", b"00-10-A4-23-19-C0", CISCO) == MabRead(MAC)
    assert read_mac(b"0010a42319c0", None, CISCO) == MabRead(MAC)


def test_two_macs_that_disagree_are_not_mab() -> None:
    read = read_mac(b"0010a42319c0", b"00-e0-fc-12-34-56", CISCO)
    assert (read.mac, read.refusal) == (None, "not-mab")
    assert "another device" in read.reason


def test_user_name_shape_without_a_mac_in_user_name() -> None:
    # An 802.1X-looking name with a MAC beside it is another shape's request; with no MAC
    # anywhere it is no MAB request at all.
    assert read_mac(b"alice", b"00-e0-fc-12-34-56", CISCO).refusal == "not-mab"
    read = read_mac(b"alice", b"not-a-mac", CISCO)
    assert (read.refusal, read.reason) == ("not-a-mac", "User-Name 'alice' is not a MAC address")
    assert read_mac(None, None, CISCO).reason == "User-Name '(none)' is not a MAC address"


def test_calling_station_shape_reads_the_mac_there_under_its_account() -> None:
    assert read_mac(b"macauth", b"00-e0-fc-12-34-56", HUAWEI) == MabRead(OTHER, from_user=False)


def test_calling_station_shape_ignores_a_mac_in_user_name() -> None:
    # Huawei's macauth never puts the MAC in User-Name: one there is not this shape's request.
    read = read_mac(b"0010a42319c0", b"00-e0-fc-12-34-56", HUAWEI)
    assert read.refusal == "not-mab"
    assert read.reason == "User-Name '0010a42319c0' is not the MAB account 'macauth'"


@pytest.mark.parametrize("user", [b"someone", None])
def test_calling_station_shape_refuses_another_account(user: bytes | None) -> None:
    assert read_mac(user, b"00-e0-fc-12-34-56", HUAWEI).refusal == "not-mab"


def test_calling_station_shape_without_a_mac_there() -> None:
    read = read_mac(b"macauth", b"port-7", HUAWEI)
    assert (read.mac, read.refusal) == (None, "not-a-mac")
    assert read.reason == "Calling-Station-Id is not a MAC address"


def test_either_shape_takes_user_name_first_then_calling_station_id_under_any_account() -> None:
    assert read_mac(b"0010a42319c0", None, EITHER) == MabRead(MAC)
    assert read_mac(b"whatever", b"00-e0-fc-12-34-56", EITHER) == MabRead(OTHER, from_user=False)
    assert read_mac(b"whatever", None, EITHER).refusal == "not-a-mac"


def test_describe_says_where_the_mac_and_password_are() -> None:
    assert CISCO.describe() == "User-Name = the MAC, password = the MAC"
    assert HUAWEI.describe() == "Calling-Station-Id = the MAC with User-Name 'macauth', the fixed password"
    assert MabShape(mac_from="either", check="none").describe() == (
        "User-Name = the MAC, or Calling-Station-Id = the MAC, no password checked"
    )
    assert MabShape(mac_from="either", account="mab", check="mac-or-fixed").describe() == (
        "User-Name = the MAC, or Calling-Station-Id = the MAC with User-Name 'mab', "
        "password = the MAC or the fixed password"
    )
