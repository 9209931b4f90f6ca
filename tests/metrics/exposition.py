"""Prometheus text exposition, parsed for the metrics tests (ours and Triton's captured scrapes)."""

from __future__ import annotations

import re

import requests


def parse(text: str) -> tuple[dict, dict]:
    """families: name -> {help, type}; samples: (name, labels as sorted tuple) -> value ("Nan" is NaN)."""
    families: dict = {}
    samples: dict = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            families.setdefault(name, {})["help"] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            families.setdefault(name, {})["type"] = kind
        elif line:
            match = re.fullmatch(r"(\w+)(\{.*\})? (\S+)", line)
            assert match, line
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")))
            samples[(match.group(1), labels)] = float("nan") if match.group(3) == "Nan" else float(match.group(3))
    return families, samples


def scrape(server) -> tuple[dict, dict]:
    """The parsed exposition of a running server's metrics port."""
    return parse(requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text)
