"""A new user's question: three drugs, one outcome, declared in a config of their own.

Runs the pipeline (module-scoped, twice) in temporary copies of the project on a table of 9 invented single-arm
trials of "Drug A", "Drug B" and "Drug C", with the comparison deliberately not in the table's order
([Drug B, Drug A, Drug C]), and checks that every output speaks of this question and none of the bundled one,
that contrasts read in the configured direction, that an outcome is added by one config entry, and that outcomes
in the old form are refused.
"""

import json
import re
import struct
import subprocess
import sys
import tarfile
import zlib

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from metaprop.analysis.meta_analysis import pool_outcome
from test_pipeline import copy_project

TITLE = "Drug A, B and C: overall response in single-arm trials"
QUESTION = "How do overall response rates with Drug B compare with those with Drug A and Drug C?"
SOURCE = "Trial publications collected for this test (invented counts, not real trials)."
COMPARISON = ["Drug B", "Drug A", "Drug C"]  # not the table's order (Drug A rows come first)
MODALITIES = ["Drug A", "Drug B", "Drug C"]
PAIRS = [("Drug B", "Drug A"), ("Drug B", "Drug C"), ("Drug A", "Drug C")]
# study, modality, n, events, mrd_neg_events (the last column only in the second run's table)
TRIALS = [
    ("Alpha 2018", "Drug A", 45, 18, 10),
    ("Beta 2019", "Drug A", 120, 54, 30),
    ("Gamma 2020", "Drug A", 32, 11, 6),
    ("Delta 2017", "Drug B", 60, 36, 25),
    ("Epsilon 2019", "Drug B", 150, 97, 70),
    ("Zeta 2021", "Drug B", 25, 14, 9),
    ("Eta 2016", "Drug C", 80, 20, 8),
    ("Theta 2020", "Drug C", 200, 58, 25),
    ("Iota 2022", "Drug C", 22, 5, 2),
]
ORR = {"id": "orr", "label": "overall response", "events": "events", "role": "efficacy", "higher_is_better": True,
       "definition": "complete or partial response at the first assessment"}
MRD = {"id": "mrd_neg", "label": "MRD-negative remission", "events": "mrd_neg_events", "role": "efficacy",
       "higher_is_better": True, "definition": "MRD-negative complete remission by flow cytometry"}
METHODS = ["glmm", "logit-reml", "logit-reml-hksj", "bayes"]
# Words of the bundled question (config.yaml, data/raw/table1.tsv) that no output of this question may carry.
BUNDLED_WORDS = ["CAR-T", "CAR T", "blinatumomab", "Blinatumomab", "complete response", "CRS", "neurotoxicity",
                 "intention to treat", "cr_itt", "scrs", "scns", "B-ALL"]
FIGURES = ["forest", "posterior", "cumulative", "funnel"]
FORMATS = ["pdf", "png", "svg"]  # svg: its text is searchable (matplotlib writes each string as a comment)
TABLES = ["studies", "pooled", "subgroup_tests", "leave_one_out", "methods_comparison", "overlap_sensitivity",
          "adjusted_comparisons", "cumulative", "small_study_effects", "prior_sensitivity"]


def question_config(outcomes=(ORR,), comparison=COMPARISON):
    return {"trials": ["data/raw/drugs.tsv"], "title": TITLE, "question": QUESTION, "source": SOURCE,
            "comparison": list(comparison), "outcomes": list(outcomes), "figure_formats": FORMATS,
            "methods": METHODS, "primary_method": "glmm", "subgroup_analyses": [], "adjusted_comparisons": []}


def write_question(workdir, config, mrd_column=False):
    """The trial table (study, modality, n, events[, mrd_neg_events]) and the config file drugs.yaml."""
    columns = ["study", "modality", "n", "events", *(["mrd_neg_events"] if mrd_column else [])]
    rows = [row[: len(columns)] for row in TRIALS]
    lines = ["\t".join(columns), *("\t".join(map(str, row)) for row in rows)]
    (workdir / "data/raw/drugs.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (workdir / "drugs.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def run(workdir, configfile="drugs.yaml"):
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", configfile],
                          cwd=workdir, check=False, capture_output=True, text=True)


def project(tmp_path_factory, name):
    return copy_project(tmp_path_factory.mktemp(name) / "project")


@pytest.fixture(scope="module")
def drugs(tmp_path_factory):
    workdir = project(tmp_path_factory, "drugs")
    write_question(workdir, question_config())
    done = run(workdir)
    assert done.returncode == 0, done.stderr[-5000:]
    return workdir


@pytest.fixture(scope="module")
def drugs_mrd(tmp_path_factory):
    """The same question with one more outcome entry (and its column in the table)."""
    workdir = project(tmp_path_factory, "drugs_mrd")
    write_question(workdir, question_config(outcomes=(ORR, MRD)), mrd_column=True)
    done = run(workdir)
    assert done.returncode == 0, done.stderr[-5000:]
    return workdir


# ---- reading the outputs as text ------------------------------------------------------------------------------

def without_data_uris(text):
    return re.sub(r"data:[a-z]+/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=\s]+", "", text)


def svg_text(path):
    """Every string of a matplotlib SVG (text is drawn as paths, each string kept in a comment before it)."""
    svg = path.read_text(encoding="utf-8")
    return "\n".join([*re.findall(r"<!-- (.*?) -->", svg), *re.findall(r"<text[^>]*>([^<]*)", svg)])


def pdf_text(path):
    """The strings a PDF shows (each BT..ET block of its decompressed content streams joined), and the bytes
    outside its streams (metadata)."""
    raw = path.read_bytes()
    blocks = []
    for stream in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", raw, re.DOTALL):
        try:
            content = zlib.decompress(stream.group(1))
        except zlib.error:
            continue
        for block in re.findall(rb"BT(.*?)ET", content, re.DOTALL):
            parts = re.findall(rb"\(((?:[^()\\]|\\.)*)\)", block)
            joined = b"".join(re.sub(rb"\\(.)", rb"\1", p) for p in parts)
            # the figures' PDFs use TrueType (CID) fonts, whose text matplotlib writes as UTF-16BE codes
            blocks.append(joined.decode("utf-16-be", errors="replace"))
    outside = re.sub(rb"stream\r?\n.*?\r?\nendstream", b"", raw, flags=re.DOTALL).decode("latin-1")
    return "\n".join(blocks) + "\n" + outside


def png_text(path):
    """The text chunks (tEXt, zTXt, iTXt) of a PNG; the image data is not text."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, chunks = 8, []
    while pos < len(raw):
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        data = raw[pos + 8:pos + 8 + length]
        if kind == b"zTXt":
            key, _, rest = data.partition(b"\0")
            data = key + b"\0" + zlib.decompress(rest[1:])
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            chunks.append(data.decode("latin-1"))
        pos += 12 + length
    return "\n".join(chunks)


def crate(workdir):
    with tarfile.open(workdir / "results/archive/meta-analysis.tar.gz") as tar:
        return tar.extractfile("meta-analysis/ro-crate-metadata.json").read().decode("utf-8")


def figure_texts(workdir):
    texts = {}
    for path in sorted((workdir / "results/figures").iterdir()):
        reader = {".svg": svg_text, ".pdf": pdf_text, ".png": png_text}[path.suffix]
        texts[f"results/figures/{path.name}"] = reader(path)
    return texts


def every_text(workdir):
    """Each output a reader sees, as text: report, tables, figures, the archive's RO-Crate."""
    texts = {"results/report.md": (workdir / "results/report.md").read_text(encoding="utf-8"),
             "results/report.html": without_data_uris((workdir / "results/report.html").read_text(encoding="utf-8")),
             "ro-crate-metadata.json": crate(workdir)}
    for path in sorted((workdir / "results/tables").rglob("*.tsv")):
        texts[str(path.relative_to(workdir))] = path.read_text(encoding="utf-8")
    texts.update(figure_texts(workdir))
    return texts


def subgroup_tests(workdir):
    return pd.read_csv(workdir / "results/tables/subgroup_tests.tsv", sep="\t")


# ---- the question's own outputs -------------------------------------------------------------------------------

def test_run_writes_the_outputs_of_the_declared_outcome(drugs):
    for kind in FIGURES:
        for ext in FORMATS:
            assert (drugs / f"results/figures/{kind}_orr.{ext}").stat().st_size > 0, (kind, ext)
    for ext in FORMATS:
        assert (drugs / f"results/figures/flow.{ext}").stat().st_size > 0
    for table in TABLES:
        assert (drugs / f"results/tables/{table}.tsv").stat().st_size > 0, table
    for path in ("results/report.md", "results/report.html", "results/archive/meta-analysis.tar.gz"):
        assert (drugs / path).stat().st_size > 0, path
    # no file of a bundled outcome
    names = {p.name for p in (drugs / "results").rglob("*")}
    assert not [n for n in names if re.search(r"_(cr|cr_itt|scrs|scns)\.", n)], names
    studies = pd.read_csv(drugs / "results/tables/studies.tsv", sep="\t")
    assert set(studies["outcome"]) == {"orr"} and len(studies) == 9 and studies["included"].all()
    pooled = pd.read_csv(drugs / "results/tables/pooled.tsv", sep="\t")
    assert set(pooled["outcome"]) == {"orr"} and set(pooled["method"]) == set(METHODS)
    assert set(pooled["subgroup"]) == {*MODALITIES, "overall"}


def test_no_output_carries_the_bundled_question(drugs):
    texts = every_text(drugs)
    assert len([k for k in texts if k.startswith("results/figures/")]) == 6 * len(FORMATS)  # forest, posterior, cumulative, funnel, baujat, flow
    leaks = [(name, word) for name, text in texts.items() for word in BUNDLED_WORDS if word in text]
    assert leaks == []


def test_outputs_carry_the_new_question(drugs):
    md = (drugs / "results/report.md").read_text(encoding="utf-8")
    html = without_data_uris((drugs / "results/report.html").read_text(encoding="utf-8"))
    assert md.startswith(f"# {TITLE}\n") and QUESTION in md and SOURCE in md
    assert f"<title>{TITLE}</title>" in html and f"<h1>{TITLE}</h1>" in html and QUESTION in html
    for text in (md, html):
        assert "overall response" in text and "## Overall response" in md
        assert all(m in text for m in MODALITIES)
    assert "Outcome: complete or partial response at the first assessment." in md
    for study, *_ in TRIALS:
        assert study in md
    figures = figure_texts(drugs)
    for ext in ("svg", "pdf"):  # a PNG holds no text to read
        forest = figures[f"results/figures/forest_orr.{ext}"]
        assert "Overall response" in forest and all(f"Modality = {m}" in forest for m in MODALITIES), ext
        assert all(study in forest for study, *_ in TRIALS), ext
        posterior = figures[f"results/figures/posterior_orr.{ext}"]
        assert "Pooled overall response rate" in posterior and all(m in posterior for m in MODALITIES), ext
        assert "Funnel plots: overall response" in figures[f"results/figures/funnel_orr.{ext}"], ext
        assert "Overall response (%, cumulative)" in figures[f"results/figures/cumulative_orr.{ext}"], ext
        flow = figures[f"results/figures/flow.{ext}"]
        assert "Overall response: 9 cohorts assessed" in flow and all(f"{m}: 3" in flow for m in MODALITIES), ext
    graph = {e["@id"]: e for e in json.loads(crate(drugs))["@graph"]}
    root = graph["./"]
    assert root["name"].startswith(TITLE) and root["description"].startswith(QUESTION)
    assert root["citation"] == SOURCE
    assert graph["Snakefile"]["name"].startswith(TITLE)
    assert "data/raw/drugs.tsv" in graph and "drugs.yaml" in graph
    assert "--configfile drugs.yaml" in graph["#run"]["description"]
    # the outcome label and the modalities are in the crate through the title and question this config chose
    crate_text = crate(drugs)
    assert "overall response" in crate_text and all(m in crate_text for m in MODALITIES)


# ---- the direction of the contrasts ---------------------------------------------------------------------------

def test_table_contrasts_read_in_the_configured_direction(drugs):
    tests = subgroup_tests(drugs)
    diff = tests[tests["test"] == "bayes-difference"]
    assert list(zip(diff["group_1"], diff["group_2"])) == PAIRS
    assert list(diff["contrast"]) == [f"{a} minus {b}" for a, b in PAIRS]
    for token in ("glmm", "logit-reml", "logit-reml-hksj"):
        pair = tests[(tests["test"] == "metareg-pair") & (tests["method"] == token)]
        assert list(zip(pair["group_1"], pair["group_2"])) == PAIRS, token
        assert list(pair["contrast"]) == [f"{a} vs {b}" for a, b in PAIRS], token
    # Drug B's rate is the highest, Drug C's the lowest: every contrast in this direction is positive
    pair = tests[tests["test"] == "metareg-pair"]
    assert (pair["lor"] > 0).all() and (pair["or"] > 1).all()
    assert (diff["diff_median"] > 0).all() and (diff["prob_gt_0"] > 0.5).all()
    sensitivity = pd.read_csv(drugs / "results/tables/prior_sensitivity.tsv", sep="\t")
    contrasts = sensitivity.dropna(subset=["contrast"])
    assert set(contrasts["contrast"]) == {f"{a} minus {b}" for a, b in PAIRS}
    assert (contrasts["diff_median"] > 0).all()


def test_report_sentences_read_in_the_configured_direction(drugs):
    md = (drugs / "results/report.md").read_text(encoding="utf-8")
    diff = subgroup_tests(drugs)
    diff = diff[diff["test"] == "bayes-difference"].set_index("contrast")
    for a, b in PAIRS:
        row = diff.loc[f"{a} minus {b}"]
        assert (f"Probability that the pooled overall response rate of {a} exceeds {b}'s: "
                f"{row['prob_gt_0']:.3f}; by more than 10 percentage points: {row['prob_gt_0.1']:.3f}") in md
        assert f"| overall response | {a} minus {b} | +" in md
        assert f"| {a} vs {b}: OR " in md
    for a, b in PAIRS:  # never the other way round
        assert f"of {b} exceeds {a}'s" not in md
        assert f"{b} minus {a}" not in md and f"{b} vs {a}" not in md
    sentence = re.search(r"Every contrast in this report reads [^.]*\.", md).group(0)
    assert "in the order Drug B, Drug A, Drug C" in sentence
    assert "(Drug B vs Drug A, Drug B vs Drug C, Drug A vs Drug C)" in sentence
    # the summary lists the modalities in the configured order, not the table's
    summary = next(part for part in md.split("## Summary of findings")[1].split("\n\n") if part.startswith("| "))
    assert [line.split(" | ")[0].strip("| ") for line in summary.splitlines()[2:]] == COMPARISON


def test_posterior_figure_reads_first_minus_second(drugs):
    for ext in ("svg", "pdf"):
        text = figure_texts(drugs)[f"results/figures/posterior_orr.{ext}"]
        assert "Drug B minus Drug A" in text, ext
        assert "Drug A minus Drug B" not in text, ext
    svg = svg_text(drugs / "results/figures/posterior_orr.svg")
    assert "Difference in pooled rate (percentage points):\nDrug B minus Drug A" in svg
    tests = subgroup_tests(drugs)
    row = tests[tests["test"] == "bayes-difference"].set_index("contrast").loc["Drug B minus Drug A"]
    assert f"P(difference &gt; +0 points) = {row['prob_gt_0']:.3f}" in svg
    assert f"median {100 * row['diff_median']:+.1f} points" in svg
    # the densities are drawn in the configured order
    assert svg.index("\nDrug B\n") < svg.index("\nDrug A\n") < svg.index("\nDrug C\n")


def test_contrast_numbers_flip_with_the_comparison(drugs):
    """The run's contrasts equal the library's with the configured comparison, and are exactly the negatives
    (odds ratios the reciprocals, probabilities the complements) of the library's with the reversed one."""
    studies = pd.read_csv(drugs / "results/tables/studies.tsv", sep="\t")
    bayes = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))["bayes"]
    ran = subgroup_tests(drugs).set_index(["method", "contrast"])
    _, same = pool_outcome(studies, "orr", METHODS, 0.95, 7, bayes, COMPARISON)
    _, flipped = pool_outcome(studies, "orr", METHODS, 0.95, 7, bayes, COMPARISON[::-1])
    same, flipped = same.set_index(["method", "contrast"]), flipped.set_index(["method", "contrast"])
    for token in ("glmm", "logit-reml", "logit-reml-hksj"):
        for a, b in PAIRS:
            ours, lib, rev = ran.loc[(token, f"{a} vs {b}")], same.loc[(token, f"{a} vs {b}")], \
                flipped.loc[(token, f"{b} vs {a}")]
            assert (rev["group_1"], rev["group_2"]) == (b, a)
            assert ours["lor"] == pytest.approx(lib["lor"], rel=1e-9)
            assert ours["lor"] == pytest.approx(-rev["lor"], rel=1e-6)
            assert ours["or"] == pytest.approx(1 / rev["or"], rel=1e-6)
            assert (ours["lor_ci_low"], ours["lor_ci_high"]) == pytest.approx((-rev["lor_ci_high"],
                                                                              -rev["lor_ci_low"]), rel=1e-6)
            assert ours["lor_se"] == pytest.approx(rev["lor_se"], rel=1e-6)
            assert ours["statistic"] == pytest.approx(rev["statistic"], rel=1e-6)
    for a, b in PAIRS:
        ours, rev = ran.loc[("bayes", f"{a} minus {b}")], flipped.loc[("bayes", f"{b} minus {a}")]
        assert ours["diff_median"] == pytest.approx(-rev["diff_median"], abs=1e-6)
        assert (ours["diff_ci_low"], ours["diff_ci_high"]) == pytest.approx((-rev["diff_ci_high"],
                                                                            -rev["diff_ci_low"]), abs=1e-6)
        assert ours["prob_gt_0"] == pytest.approx(1 - rev["prob_gt_0"], abs=1e-6)
    # and the sign agrees with the pooled rates themselves
    pooled = pd.read_csv(drugs / "results/tables/pooled.tsv", sep="\t")
    glmm = pooled[pooled["method"] == "glmm"].set_index("subgroup")["estimate"]
    logit = np.log(glmm / (1 - glmm))
    for a, b in PAIRS:
        assert ran.loc[("glmm", f"{a} vs {b}"), "lor"] == pytest.approx(logit[a] - logit[b], abs=0.05)


# ---- defects a new user met, fixed -----------------------------------------------------------------------------

def test_direction_sentence_covers_every_pair(drugs):
    md = (drugs / "results/report.md").read_text(encoding="utf-8")
    sentence = re.search(r"Every contrast in this report reads [^.]*\.", md).group(0)
    assert all(f"{a} vs {b}" in sentence for a, b in PAIRS)


def test_cumulative_figure_says_how_trials_were_ordered(drugs):
    svg = svg_text(drugs / "results/figures/cumulative_orr.svg")
    assert "order of publication year" not in svg


def test_overlap_sensitivity_needs_no_year_without_overlaps(drugs):
    overlap = pd.read_csv(drugs / "results/tables/overlap_sensitivity.tsv", sep="\t")
    assert not overlap["note"].fillna("").str.contains("needs a 'year'").any()


# ---- adding an outcome; the old form -------------------------------------------------------------------------

def test_adding_an_outcome_is_one_config_entry(drugs, drugs_mrd):
    config = yaml.safe_load((drugs_mrd / "drugs.yaml").read_text(encoding="utf-8"))
    first = yaml.safe_load((drugs / "drugs.yaml").read_text(encoding="utf-8"))
    assert {**config, "outcomes": config["outcomes"][:1]} == first and config["outcomes"][1] == MRD
    for ext in FORMATS:
        for kind in FIGURES:
            assert (drugs_mrd / f"results/figures/{kind}_mrd_neg.{ext}").stat().st_size > 0, (kind, ext)
    pooled = pd.read_csv(drugs_mrd / "results/tables/pooled.tsv", sep="\t")
    mrd = pooled[pooled["outcome"] == "mrd_neg"]
    assert set(zip(mrd["method"], mrd["subgroup"])) == {(m, g) for m in METHODS for g in [*MODALITIES, "overall"]}
    glmm = mrd[mrd["method"] == "glmm"].set_index("subgroup")
    for modality in MODALITIES:
        rows = [t for t in TRIALS if t[1] == modality]
        assert glmm.loc[modality, "events"] == sum(t[4] for t in rows)
        assert glmm.loc[modality, "n"] == sum(t[2] for t in rows)
    # the first outcome stays primary and its numbers do not move
    before = pd.read_csv(drugs / "results/tables/pooled.tsv", sep="\t")
    after = pooled[pooled["outcome"] == "orr"].reset_index(drop=True)
    pd.testing.assert_frame_equal(after[before.columns], before, check_exact=False, rtol=1e-12)
    tests = subgroup_tests(drugs_mrd)
    diff = tests[(tests["test"] == "bayes-difference") & (tests["outcome"] == "mrd_neg")]
    assert list(diff["contrast"]) == [f"{a} minus {b}" for a, b in PAIRS]
    md = (drugs_mrd / "results/report.md").read_text(encoding="utf-8")
    assert "\n## MRD-negative remission\n" in md and "figures/forest_mrd_neg.png" in md
    assert "MRD-negative complete remission by flow cytometry" in md
    assert md.index("## Overall response") < md.index("## MRD-negative remission")
    assert "By the primary method (glmm), the pooled overall response rate is Drug B" in md
    assert [w for w in BUNDLED_WORDS if w in md] == []


def test_outcomes_in_the_old_form_are_refused(tmp_path):
    workdir = copy_project(tmp_path / "project")
    write_question(workdir, {**question_config(), "outcomes": ["orr"]})
    done = run(workdir)
    assert done.returncode != 0
    message = done.stdout + done.stderr
    assert "ids only" in message
    assert "outcomes:\n  - id: orr\n    label: orr" in message and "events: orr_events" in message
    assert not (workdir / "results").exists()
