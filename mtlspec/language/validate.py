"""Validation of spec files: load, merge, expand, check; one result per concrete spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mtlspec.data.formats.class_attributes import BUILTIN
from mtlspec.data.formats.class_descriptions import BUILTIN_NAMES
from mtlspec.errors import Diagnostic, UsageError
from mtlspec.language.checks import Finding, check, check_capabilities, check_matrix, entries, get_in
from mtlspec.language.checks.class_tables import check_class_tables
from mtlspec.language.compose import apply_overrides, expand_matrix, load_with_extends, override_label, under_matrix
from mtlspec.language.diagnose import structural
from mtlspec.language.paths import Roots, is_dir, is_file
from mtlspec.language.root import Spec
from mtlspec.language.source import Document, Location

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass
class Result:
    """The outcome for one concrete spec (a file, or one combination of its matrix)."""

    file: str
    name: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    spec: Spec | None = None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def ok(self, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)


def _located(finding: Finding, doc: Document) -> Diagnostic:
    where = doc.key_at(finding.path) if finding.at == "key" else doc.value_at(finding.path)
    dotted = ".".join(str(p) for p in finding.path)
    return Diagnostic(where.file, where.line, where.col, finding.code, dotted, finding.message, finding.severity)


def _unique_sorted(diags: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(set(diags), key=lambda d: (d.file, d.line, d.col, d.code, d.path))


def member_incompatibility(member: Spec, model: Spec, what: str) -> str | None:
    """Why a member cannot join this spec's ensemble, if it cannot (used by `validate` and `run`)."""
    if member.data.datasets != model.data.datasets or set(member.tasks) != set(model.tasks):
        return (f"{what} must train on this spec's datasets and tasks"
                f" (tasks here: {', '.join(model.tasks)}; there: {', '.join(member.tasks)})")
    if member.data_seed() != model.data_seed():
        return (f"{what} generates and splits its datasets with seed {member.data_seed()}, this spec with "
                f"{model.data_seed()}: its training split would differ and could hold this spec's evaluation samples; set data.seed alike")
    return None


def _confined_members(paths: list, base: Path, roots: Roots, what: str, findings: list[Finding]) -> Iterator[tuple[tuple, str, Path]]:
    """(where in the spec, the path as written, the path resolved) of each member path inside the
    allowed roots; every other path becomes a finding."""
    for i, name in enumerate(paths):
        where = ("ensemble", "members", "paths", i)
        if not isinstance(name, str):
            continue
        target, problem = roots.check(name, base)
        if target is None:
            findings.append(_path_problem(where, f"{what} {name!r}", problem))
            continue
        yield where, name, target


def _member_runs(paths: list, model: Spec | None, base: Path, roots: Roots) -> list[Finding]:
    """`ensemble.members: {type: runs}`: each run directory's resolved spec fits this spec. A run
    that does not exist yet is a warning (it may be trained before this spec runs)."""
    import yaml

    findings: list[Finding] = []
    for where, name, folder in _confined_members(paths, base, roots, "run directory", findings):
        resolved = folder / "spec.resolved.yaml"
        if not is_file(resolved):
            findings.append(Finding(where, "missing-file", f"run directory '{name}' has no spec.resolved.yaml (yet): `run` needs a finished run there", severity="warning"))
            continue
        try:
            member = Spec.model_validate(yaml.safe_load(resolved.read_text()))
        except Exception as exc:  # a run made by another version, or edited by hand
            findings.append(Finding(where, "invalid", f"run directory '{name}': its spec.resolved.yaml is not a spec this version reads ({type(exc).__name__})"))
            continue
        why = member_incompatibility(member, model, f"run '{name}'") if model is not None else None
        if why:
            findings.append(Finding(where, "incompatible", why))
    return findings


def _member_specs(data: dict, model: Spec | None, base: Path, shown: str, seen: frozenset[Path], roots: Roots) -> tuple[list[Finding], list[Diagnostic]]:
    """`ensemble.members` of type specs: each file exists, validates, has no matrix, and trains on
    this spec's datasets, splits and tasks; their own diagnostics come back as they are (their
    file:line:col). Of type runs: see _member_runs."""
    members = (data.get("ensemble") or {}).get("members") if isinstance(data.get("ensemble"), dict) else None
    if not isinstance(members, dict) or not isinstance(members.get("paths"), list):
        return [], []
    if members.get("type") == "runs":
        return _member_runs(members["paths"], model, base, roots), []
    if members.get("type") != "specs":
        return [], []
    findings: list[Finding] = []
    diagnostics: list[Diagnostic] = []
    for where, name, target in _confined_members(members["paths"], base, roots, "member spec", findings):
        if not is_file(target):
            findings.append(Finding(where, "missing-file", f"member spec '{name}' not found (looked for {target})"))
            continue
        if target in seen:
            findings.append(Finding(where, "extends-cycle", f"member spec '{name}' leads back to a spec that names it"))
            continue
        results = validate_file(target, shown_as=str(Path(shown).parent / name), _seen=seen | {target}, _roots=roots)
        diagnostics.extend(d for r in results for d in r.diagnostics)
        if len(results) > 1:
            findings.append(Finding(where, "incompatible", f"member spec '{name}' has a matrix ({len(results)} runs); a member is one run"))
        elif results[0].spec is None:
            findings.append(Finding(where, "invalid", f"member spec '{name}' is not valid (its own diagnostics name that file)"))
        elif model is not None and (why := member_incompatibility(results[0].spec, model, f"member spec '{name}'")):
            findings.append(Finding(where, "incompatible", why))
    return findings, diagnostics


def _path_problem(where: tuple, what: str, problem: str) -> Finding:
    return Finding(where, "outside-project" if "outside the project root" in problem else "invalid", f"{what}: {problem}")


def _named_paths(data: dict) -> list[tuple[tuple, str, tuple]]:
    """(where in the spec, the path as written, where in the spec the folder it is relative to is
    written, or () for the spec's own folder) for every data file or folder and baseline run."""
    out: list[tuple[tuple, str, tuple]] = []
    for name, ds in entries(get_in(data, "data", "datasets")).items():
        at = ("data", "datasets", name)
        for key in ("root", "table", "images"):
            out.append((at + (key,), ds.get(key), ()))
        if isinstance(ds.get("root"), str):
            relative = at + ("root",)
            out.append((at + ("attributes_table",), ds.get("attributes_table"), relative))
            annotations = ds.get("annotations")
            for split, value in (annotations.items() if isinstance(annotations, dict) else []):
                out.append((at + ("annotations", split), value, relative))
    out.append((("data", "sample_overrides"), get_in(data, "data", "sample_overrides"), ()))
    for name, task in entries(data.get("tasks")).items():  # a zero-shot task's class table (or a shipped one's keyword)
        if task.get("type") == "zero_shot" and task.get("attributes") not in BUILTIN:
            out.append((("tasks", name, "attributes"), task.get("attributes"), ()))
        if task.get("type") == "zero_shot" and task.get("descriptions") not in BUILTIN_NAMES:
            out.append((("tasks", name, "descriptions"), task.get("descriptions"), ()))
    init = get_in(data, "model", "backbone", "init")
    if isinstance(init, dict):
        out.append((("model", "backbone", "init", "checkpoint"), init.get("checkpoint"), ()))
    baseline = get_in(data, "evaluation", "baseline")
    if isinstance(baseline, dict) and baseline.get("type") == "run":
        out.append((("evaluation", "baseline", "path"), baseline.get("path"), ()))
    return [(where, raw, relative) for where, raw, relative in out if isinstance(raw, str)]


def _path_findings(data: dict, base: Path, roots: Roots) -> list[Finding]:
    """Every path the spec names stays inside the allowed roots; a baseline run exists (a warning:
    it may be trained before this spec runs, and `run` refuses to start without it)."""
    findings: list[Finding] = []
    for where, raw, relative in _named_paths(data):
        if relative and any(f.path == relative for f in findings):
            continue  # relative to a folder already refused
        folder = base / get_in(data, *relative) if relative else base
        target, problem = roots.check(raw, folder)
        if target is None:
            findings.append(_path_problem(where, f"{where[-1]} {raw!r}", problem))
        elif where[0] == "evaluation" and not is_file(target / "report.json"):
            findings.append(Finding(where, "missing-file", f"baseline run '{raw}' has no report.json (yet): `run` needs a finished run there", severity="warning"))
        elif where[-1] == "checkpoint" and not (is_file(target) or is_dir(target)):
            findings.append(Finding(where, "missing-file", f"checkpoint '{raw}' not found (looked for {target}): `run` needs it", severity="warning"))
    return findings


def validate_file(path: Path, overrides: list[str] | tuple[str, ...] = (), shown_as: str | None = None,
                  allow: tuple[str | Path, ...] | list = (), _seen: frozenset[Path] = frozenset(),
                  _roots: Roots | None = None) -> list[Result]:
    """Validate one spec file; raises UsageError only for malformed --set arguments. Paths the spec
    names must stay inside its project root or a folder in `allow` (see spec.paths)."""
    file = shown_as or str(path)
    roots = _roots or Roots.for_spec(path, allow)
    doc = load_with_extends(path, file, roots)
    apply_overrides(doc, list(overrides))
    if doc.data is None and doc.diagnostics:
        return [Result(file, path.stem, _unique_sorted(doc.diagnostics))]
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else type(doc.data).__name__
        doc.error(doc.value_at(()), "wrong-type", "", f"a spec is a mapping of sections (name, data, tasks, ...), got {got}")
        return [Result(file, path.stem, _unique_sorted(doc.diagnostics))]
    matrix_findings = check_matrix(doc.data.get("matrix"))
    matrix_diags = [_located(f, doc) for f in matrix_findings]
    if isinstance(doc.data.get("matrix"), dict):
        bad = {f.path[1] for f in matrix_findings}
        doc.data["matrix"] = {k: v for k, v in doc.data["matrix"].items() if k not in bad}
        if not doc.data["matrix"]:
            del doc.data["matrix"]
    variants, matrix = expand_matrix(doc)
    for text in overrides:  # the matrix would overwrite such a --set value in every combination
        key = text.partition("=")[0]
        clash = under_matrix(key, list(matrix))
        if clash:
            for variant in variants:
                variant.doc.error(Location(f"<--set {text}>", 1, 1), "bad-override", key,
                                  f"the spec's matrix sets {clash} in every combination, which would overwrite this value; "
                                  f"change the matrix, or run without the matrix")
    changed = override_label(list(overrides), list(matrix))
    if changed:  # runs made with --set are named by what it changed: runs/<name>/<label>/..., compare rows name[label]
        base_name = str(doc.data.get("name", path.stem))
        for variant in variants:
            variant.label = f"{changed},{variant.label}" if variant.label else changed
            variant.name = f"{base_name}[{variant.label}]"
    results = []
    for variant in variants:
        model, diags = structural(Spec, variant.doc)
        try:
            findings = check(variant.doc.data) + check_capabilities(variant.doc.data)
        except Exception as exc:  # a bug in a rule must not cost the user the other diagnostics
            findings = [Finding((), "internal-error", f"mtlspec could not finish checking this spec ({type(exc).__name__}: {exc}); please report it")]
        base = Path(path).resolve().parent
        members, member_diags = _member_specs(variant.doc.data, model, base, file, _seen | {Path(path).resolve()}, roots)
        findings += members + _path_findings(variant.doc.data, base, roots) + check_class_tables(variant.doc.data, base, roots)
        diags = variant.doc.diagnostics + matrix_diags + diags + member_diags + [_located(f, variant.doc) for f in findings]
        results.append(Result(file, variant.name, _unique_sorted(diags), model if not [d for d in diags if d.severity == "error"] else None))
    return results


def spec_files(paths: list[Path]) -> list[Path]:
    """Files named, and spec files found under folders named (skipping `_*` partials)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(p for p in sorted(path.rglob("*")) if p.suffix in SPEC_SUFFIXES and p.is_file() and not p.name.startswith("_"))
        elif path.exists():
            out.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}")
    return out


def validate_paths(paths: list[Path], overrides: list[str] | tuple[str, ...] = (), allow: tuple[str | Path, ...] | list = ()) -> list[Result]:
    results: list[Result] = []
    for path in spec_files(paths):
        results.extend(validate_file(path, overrides, allow=allow))
    return results
