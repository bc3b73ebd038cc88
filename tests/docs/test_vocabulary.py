"""docs/vocabulary.md is what the code names today, and every surface says one name per thing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from click.testing import CliRunner

from connector.cli.query import query
from connector.cli.search import search
from connector.outbound.subject import subject_fields
from connector.records.categories import CATEGORIES
from connector.records.kinds.registry import KINDS
from connector.vocabulary import OLD_SPELLINGS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "examples" / "make_vocabulary.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ncb_vocabulary_doc", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mv = _load_script()


def test_the_table_is_generated_from_the_code() -> None:
    doc = (ROOT / "docs" / "vocabulary.md").read_text(encoding="utf-8")
    start, end = doc.index(mv.BEGIN), doc.index(mv.END) + len(mv.END)
    assert doc[start:end] == mv.render(), (
        "docs/vocabulary.md is stale: run python docs/examples/make_vocabulary.py --write"
    )


def test_one_name_for_one_thing_on_every_surface() -> None:
    """A criterion compared with one record field is named as that field (or qualifies it:
    `birth_date_tolerance`, `min_loci`); a subject field that a check takes is the
    criterion's name; an import row names the record's fields."""
    for category, kind in KINDS.items():
        fields = set(CATEGORIES[category].fields)
        for criterion, compared in kind.compared.items():
            if len(compared) == 1:
                (field,) = compared
                # `finger` narrows a print's search by the record field of its name.
                named = criterion in (field, *fields) or field in criterion.split("_", 1)[-1]
                assert named or criterion.startswith(field + "_"), (category, criterion)
        row = getattr(kind, "row_model", None)
        if row is not None:
            assert fields <= set(row.model_fields) | {"loci"}, category
    becomes = mv._subject_criteria()
    for f in subject_fields():
        criteria = {where.split(".", 1)[1] for where in becomes.get(f.name, [])}
        # A subject holds a profile's loci and a print (its template, or an image extracted
        # to one) beside a person's fields: named for what they are, not as the criterion.
        if f.name == "fingerprint":
            assert criteria == {"template"}, criteria
        elif f.name not in ("dna_loci", "fingerprint_image"):
            assert criteria == {f.name}, (f.name, criteria)
        if f.option is not None:
            assert f.option == "--" + f.name.replace("_", "-")


def test_no_old_spelling_is_a_name_today() -> None:
    """An old spelling read as today's name must not shadow a field of the same category."""
    for category, old in OLD_SPELLINGS.items():
        kind = KINDS[category]
        today = set(CATEGORIES[category].fields) | set(kind.compared)
        assert not set(old) & today, category
        assert set(old.values()) <= today, category


def test_query_and_search_take_the_same_options_for_a_document() -> None:
    shown = {
        p.name: p.opts
        for p in (*query.params, *search.params)
        if not getattr(p, "hidden", False) and p.name and p.name.startswith("document_")
    }
    assert shown == {
        "document_number": ["--document-number"],
        "document_country": ["--document-country"],
        "document_type": ["--document-type"],
    }
    runner = CliRunner()
    for command in (query, search):
        text = runner.invoke(command, ["--help"], terminal_width=200).output
        assert "--document-number" in text
        assert "--number" not in text.replace("--document-number", "")
