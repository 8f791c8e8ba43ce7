"""The report: text from data files is escaped, changes since the last run are named, figures embedded."""

import pandas as pd
from metaprop.report.text import changes_since, to_html, to_markdown


def studies(rows):
    return pd.DataFrame(rows, columns=["study", "outcome", "modality", "events", "n", "included", "reason",
                                       "printed"])


def test_text_from_data_is_escaped_in_html_and_markdown(tmp_path):
    figure = tmp_path / "f.png"
    figure.write_bytes(b"\x89PNG fake")
    evil = '<script>alert("x")</script> | & "q"'
    blocks = [("h1", "Report"), ("p", evil), ("table", ["Study"], [[evil]]), ("figure", str(figure), evil)]
    html = to_html(blocks)
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in html
    md = to_markdown(blocks, {str(figure): "figures/f.png"})
    assert "| &lt;script>alert(\"x\")&lt;/script> \\| & \"q\" |" in md  # no raw tag; a pipe must not split the row
    assert "<script" not in md


def test_changes_since_the_last_run():
    before = studies([("A", "cr", "X", 3, 10, True, "", ""), ("B", "cr", "X", 5, 10, True, "", "")])
    after = studies([("A", "cr", "X", 4, 10, True, "", ""), ("C", "cr", "Y", 1, 9, True, "", "")])
    assert changes_since(before, after) == ["Added: C.", "Removed: B.", "Edited: A: events (cr)."]
    assert changes_since(before, before) == ["No trial was added, removed or edited since the last run."]
    # a column read as float because of a blank cell is not an edit
    assert changes_since(before.astype({"events": float}), before) == [
        "No trial was added, removed or edited since the last run."]
    assert changes_since(None, after) == ["No earlier run was found in results/archive/: this is the first run."]


def test_methods_text_names_the_configured_level_interval_and_nodes():
    from metaprop.report.text import methods_text

    config = {"overlap_rule": "largest", "ci_method": "agresti-coull", "level": 0.9, "glmm_nagq": 9}
    text = " ".join(methods_text(config))
    assert "has an Agresti-Coull 90% confidence interval." in text
    assert "with 9-point adaptive Gauss-Hermite quadrature" in text
    assert "Clopper" not in text.split("Primary model")[0]
