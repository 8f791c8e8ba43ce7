"""Config files read strictly before Snakemake reads them: syntax errors with file and line, no duplicate keys,
no YAML aliases (a 'billion laughs' file expands exponentially), and limits on size and on every value."""

import math
from pathlib import Path

import yaml

MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_NODES = 10_000


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names file, line or key."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses aliases and duplicate keys (both pass silently in YAML's own loaders)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ConfigError(f"{self.name}, line {mark.line + 1}: YAML aliases (*name) are not allowed in a config "
                              "file; write the value out.")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{self.name}, line {line}: key '{key}' appears twice (first on line {seen[key]}); "
                                  "keep one.")
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_config_file(path):
    """A config file's content, read as Snakemake would (YAML, JSON being YAML) but strictly."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{path}: a directory, not a config file.")
    size = file.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes; a config file may have at most {MAX_CONFIG_BYTES:,}.")
    data = file.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text ({err.reason}); save it as UTF-8.") from None
    loader = StrictLoader(text)
    loader.name = str(path)
    try:
        content = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark, begun = err.problem_mark or err.context_mark, err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (err.context, err.problem) if p)
        if begun and mark and begun.line != mark.line:
            problem += f" (the construct began on line {begun.line + 1})"
        raise ConfigError(f"{path}{where}: YAML syntax error: {problem}.") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: YAML error: {err}.") from None
    finally:
        loader.dispose()
    if content is not None and not isinstance(content, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys to values (key: value), "
                          f"not a {type(content).__name__}.")
    return content or {}


def check_config_files(paths):
    """Every config file that exists, loaded strictly; the first problem raises ConfigError."""
    for path in paths:
        if Path(path).exists():
            load_config_file(path)


def check_config_values(config):
    """The merged config (files and --config): not too many values, and every number finite.

    Counted without following shared references' memo, so an exponential structure stops at the limit at once.
    """
    count, stack = 0, [("config", config)]
    while stack:
        key, value = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise ConfigError(f"config: more than {MAX_CONFIG_NODES:,} values (aliases expanding?); the config is "
                              "refused before it is read further.")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config: {key} is {value}; it must be a finite number.")
        if isinstance(value, dict):
            stack.extend((f"{key}.{k}" if key != "config" else str(k), v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(value))


# the bayes scales the integration is tested over (logit scale); beyond them it overflows or degenerates
MU_SD_RANGE = (0.01, 1000.0)
TAU_SCALE_RANGE = (0.001, 100.0)


def check_bayes_settings(config):
    """The `bayes` block's numbers, after the schema: prior scales within the range the integration works in, and
    deltas whose result columns (prob_gt_<delta>, delta printed to 6 significant digits) are distinct."""
    bayes = config.get("bayes")
    if not isinstance(bayes, dict):
        return
    scales = [("bayes.mu_sd", bayes.get("mu_sd"), MU_SD_RANGE), ("bayes.tau_scale", bayes.get("tau_scale"),
                                                                   TAU_SCALE_RANGE)]
    for i, prior in enumerate(bayes.get("sensitivity_priors") or []):
        if isinstance(prior, dict):
            scales.append((f"bayes.sensitivity_priors[{i}].tau_scale", prior.get("tau_scale"), TAU_SCALE_RANGE))
    for key, value, (low, high) in scales:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not low <= value <= high:
            raise ConfigError(f"config: {key} is {value:g}; it must be between {low:g} and {high:g} (a standard "
                              "deviation or scale on the logit scale).")
    seen = {}
    for value in bayes.get("deltas") or []:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            column = f"prob_gt_{float(value):g}"
            if column in seen:
                raise ConfigError(f"config: bayes.deltas {seen[column]!r} and {value!r} would both be reported in "
                                  f"column {column} (deltas are printed to 6 significant digits); keep one.")
            seen[column] = value


def check_meta_regressions(config):
    """meta_regressions entries are lists of columns (or {moderators: [...], across_modalities: ...}); a bare column
    name, the likeliest slip, is refused with the form to write."""
    entries = config.get("meta_regressions")
    if not isinstance(entries, list):
        return
    bare = [e for e in entries if isinstance(e, str)]
    if bare:
        together = f", or [[{', '.join(bare)}]] for one on all of them together" if len(bare) > 1 else ""
        raise ConfigError(f"config: meta_regressions entries {bare} are column names, not sets of them; each entry is "
                          "a list of the moderators fitted together, e.g. meta_regressions: "
                          f"[{', '.join('[' + e + ']' for e in bare)}] for one regression on each{together}.")


OLD_FORM = """\
outcomes:
  - id: {id}
    label: {id}            # as a reader should see it, e.g. complete response
    events: {id}_events    # the column of exact counts (or percent: {id}_pct, or both)
    percent: {id}_pct
    denominator: n          # the column of the patients the rate is over
    role: efficacy          # or safety
    higher_is_better: true
    definition: ...
"""


def check_outcome_entries(config):
    """Outcomes in the form before outcomes were declared in config (a list of ids such as [cr, scrs]) are refused
    with the new form to write instead; outcome ids must be unique."""
    outcomes = config.get("outcomes")
    if not isinstance(outcomes, list):
        return
    old = [item for item in outcomes if isinstance(item, str)]
    if old:
        entries = "".join(OLD_FORM.format(id=i).split("\n", 1)[1] if n else OLD_FORM.format(id=i)
                          for n, i in enumerate(old))
        raise ConfigError(
            f"config: outcomes {old} are ids only, the form before outcomes were declared in config. Each outcome "
            "is now an entry that names its columns and says what it is (README, 'Declaring the question'); "
            f"for example:\n{entries}")
    ids = [item.get("id") for item in outcomes if isinstance(item, dict)]
    twice = sorted({i for i in ids if ids.count(i) > 1 and i is not None})
    if twice:
        raise ConfigError(f"config: outcome id(s) {', '.join(map(str, twice))} declared more than once.")


if __name__ == "__main__":  # python workflow/scripts/metaprop/io/configcheck.py FILE...: the README's check
    import sys

    try:
        for name in sys.argv[1:]:
            check_config_values(load_config_file(name))
            print(f"{name}: ok")
    except ConfigError as err:
        sys.exit(str(err))
