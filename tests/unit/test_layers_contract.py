"""Every module of the `workspace` package has a layer in `.importlinter`, so `lint-imports` checks all of them."""

from __future__ import annotations

import configparser
import pkgutil
from pathlib import Path

import workspace

ROOT = Path(__file__).resolve().parents[2]


def test_every_top_level_module_is_in_a_layer():
    contract = configparser.ConfigParser()
    contract.read(ROOT / ".importlinter")
    layers = contract["importlinter:contract:layers"]["layers"]
    listed = {name.strip() for line in layers.splitlines() for name in line.replace("|", ":").split(":")}
    modules = {f"workspace.{info.name}" for info in pkgutil.iter_modules(workspace.__path__)}
    assert modules - listed == set(), "add these to a layer in .importlinter (see docs/architecture.md)"
