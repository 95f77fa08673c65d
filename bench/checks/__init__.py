"""Checks of the numbers themselves: golden numbers and the nightly rerun."""
