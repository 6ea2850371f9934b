"""Level names and ranks (netlog/levels.py), with the numbers a hostile sender may claim."""

import pytest

from netlog.levels import level_from_number, level_rank


class TestLevelFromNumber:
    """A stdlib level number becomes a name, whatever number is claimed."""

    @pytest.mark.parametrize(
        ("number", "expected"),
        [
            (10, "debug"),
            (50, "critical"),
            (15, "level 15"),
            (-5, "level -5"),
            (10**17, f"level {10**17}"),
            # Issue 15 item 1: f"level {10**5000}" raised ValueError (int-to-str limit).
            (10**5000, "info"),
            (-(10**5000), "info"),
            (10**18, "info"),
            (True, "info"),
            (20.0, "info"),
            ("20", "info"),
            (None, "info"),
        ],
        ids=lambda value: value if isinstance(value, str) else type(value).__name__,
    )
    def test_numbers(self, number, expected):
        assert level_from_number(number) == expected

    def test_a_huge_number_compares_as_info(self):
        assert level_rank(level_from_number(10**5000)) == level_rank("info")
