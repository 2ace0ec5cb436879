"""Dispositions (wrap-up codes) in YAML: a catalogue of codes with labels, each queue's and
campaign's list of them; unknown, repeated or reserved codes are refused with their place."""

from __future__ import annotations

from pathlib import Path

from callcenter.config.load import load
from tests.centers import BASE, REPO, example, problems, write

WITH_CODES = BASE.replace(
    "  sales: {skills: {sales: 3}}",
    "  sales:\n    skills: {sales: 3}\n    dispositions: [sale, no_sale]",
)
CATALOGUE = """\
dispositions:
  sale: Sale made
  no_sale: {label: Not interested}
"""


def test_codes_are_read_with_their_labels(tmp_path: Path) -> None:
    config = load(write(tmp_path, CATALOGUE, base=WITH_CODES), prompts_dir=None, env={}).config
    assert config.queues["sales"].dispositions == ("sale", "no_sale")
    assert [(c.code, c.label) for c in config.disposition_codes("sales")] == [
        ("sale", "Sale made"),
        ("no_sale", "Not interested"),
    ]
    assert config.disposition_codes("nope") == ()


def test_the_example_center_has_codes_for_every_queue_and_campaign() -> None:
    config = example()
    for q in config.queues.values():
        assert config.disposition_codes(q.id), q.id
    for c in config.campaigns.values():
        codes = config.disposition_codes(c.queue, c.id)
        assert codes and {x.code for x in codes} == set(c.dispositions), c.id


def test_a_campaigns_codes_win_over_its_queues() -> None:
    config = example()
    camp = next(iter(config.campaigns.values()))
    assert [c.code for c in config.disposition_codes(camp.queue, camp.id)] == list(camp.dispositions)
    assert config.disposition_codes(camp.queue, camp.id) != config.disposition_codes(camp.queue)


def test_unknown_repeated_and_reserved_codes_are_refused_where_they_are(tmp_path: Path) -> None:
    base = WITH_CODES.replace("[sale, no_sale]", "[sale, sale, bogus]")
    found = problems(tmp_path, CATALOGUE + "  none: Nothing\n  bad: {label: 'x', colour: red}\n", base=base)
    assert (
        "base.yaml:10: queues.sales.dispositions.1: disposition 'sale' is listed twice"
        " (first at base.yaml:10)" in found
    )
    assert any(
        p.startswith(
            "base.yaml:10: queues.sales.dispositions: unknown disposition 'bogus' (expected one of: sale,"
        )
        for p in found
    ), found
    assert any("extra.yaml:4: dispositions.none: 'none' is reserved" in p for p in found), found
    assert any(p.startswith("extra.yaml:5: dispositions.bad.colour:") for p in found), found


def test_a_label_must_be_one_line_of_text(tmp_path: Path) -> None:
    found = problems(tmp_path, "dispositions:\n  sale: [a, b]\n  other: {}\n", base=WITH_CODES)
    assert any(p.startswith("extra.yaml:2: dispositions.sale:") for p in found), found
    assert any(p.startswith("extra.yaml:3: dispositions.other") and "label" in p for p in found), found


def test_the_dialplans_directory_lists_its_codes() -> None:
    text = (REPO / "dialplans" / "dispositions.yaml").read_text()
    assert "dispositions:" in text and "none:" not in text.split("dispositions:", 1)[1]
