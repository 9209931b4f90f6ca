"""``--check``: every problem of a model repository at once, without loading or serving anything.

Each model goes through what a load does before it starts instances: its config is parsed,
auto-completed (framework model files are opened to read their inputs and outputs; python model
code is compiled, never run), filled with Triton's defaults and validated; its versions and model
files are looked for; sequence batching controls and states are checked; ensembles are wired
against their members' configs. Problems name the file, and the line where one is known.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tritonlite.backends import BackendSettings, auto_complete
from tritonlite.backends.registry import ENSEMBLE_PLATFORM, backend_of, by_name
from tritonlite.core.errors import TritonError
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import complete_config, read_config, validate_config
from tritonlite.repository.config import config_path as path_of_config
from tritonlite.repository.scan import ModelSource, find_models, select_versions, version_folders
from tritonlite.scheduling.ensemble import Member, member_names, validate_ensemble_config, validate_ensemble_members
from tritonlite.scheduling.sequence_batcher import SequenceSettings

_PARSE_POSITION = re.compile(r"line (\d+), column (\d+)")
_QUOTED = re.compile(r"'([^']+)'")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a model, where it was found."""

    model: str
    path: Path
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: model '{self.model}': {self.message}"


@dataclass
class _Checked:
    """A model whose config came through: what its ensembles are checked against."""

    config: mc.ModelConfig
    versions: list[int]
    config_path: Path
    # a python model whose auto_complete_config was not run: its tensors may be incomplete
    uncompleted: bool = False
    problems: list[Problem] = field(default_factory=list)


def check_repositories(
    repositories: Sequence[Path],
    strict: bool = False,
    backend_settings: BackendSettings | None = None,
    config_name: str = "",
    allow_symlinks_outside: bool = False,
) -> list[Problem]:
    """Every problem found in the repositories' models, in model order (the server's settings for
    config files: ``config_name`` as --model-config-name, symlinks as --allow-symlinks-outside-repository)."""
    problems: list[Problem] = []
    try:
        sources, duplicates = find_models(list(repositories), allow_symlinks_outside, config_name)
    except TritonError as exc:
        return [Problem("", Path(str(repositories[0]) if repositories else "."), exc.message)]
    for name, reason in sorted(duplicates.items()):
        problems.append(Problem(name, Path(name), reason))
    checked: dict[str, _Checked] = {}
    for name, source in sorted(sources.items()):
        result = _check_model(source, strict, backend_settings or {})
        problems += result.problems
        if not result.problems:
            checked[name] = result
    for name, result in sorted(checked.items()):
        if result.config.platform == ENSEMBLE_PLATFORM:
            problems += _check_ensemble(name, result, checked)
    return problems


def _check_model(source: ModelSource, strict: bool, settings: BackendSettings) -> _Checked:
    name, path = source.name, source.path
    config_path = path_of_config(path, source.config_name)
    text = _read_text(config_path)
    empty = _Checked(mc.ModelConfig(), [], config_path)

    def problem(message: str, line: int | None = None, column: int | None = None) -> _Checked:
        if line is None:
            line, column = _locate(text, message)
        empty.problems.append(Problem(name, config_path, message, line, column))
        return empty

    try:
        config = read_config(path, strict, source.root, source.config_name)
    except TritonError as exc:
        position = _PARSE_POSITION.search(exc.message)
        if position:
            return problem(exc.message, int(position.group(1)), int(position.group(2)))
        return problem(exc.message)
    versions = version_folders(path)
    newest = path / str(versions[-1]) if versions else None
    uncompleted = False
    try:
        if not strict:
            if backend_of(config) == "python" or (not config.backend and not config.platform and _has_model_py(newest)):
                # auto_complete_config is the model's own code: not run by a check
                uncompleted = newest is not None and _defines(newest / (config.default_model_filename or "model.py"))
            else:
                config = auto_complete(config, path, newest, settings)
        complete_config(config, name)
        validate_config(config, name)
        validate_ensemble_config(config)
        if config.HasField("sequence_batching"):
            SequenceSettings.from_config(config, path)
    except TritonError as exc:
        return problem(exc.message)
    result = _Checked(config, [], config_path, uncompleted)
    try:
        selected = select_versions(versions, config.version_policy)
    except TritonError as exc:
        result.problems.append(Problem(name, config_path, exc.message, *_locate(text, "version_policy")))
        return result
    if not selected:
        result.problems.append(
            Problem(name, path, f"at least one version must be available under the version policy of model '{name}'")
        )
        return result
    result.versions = selected
    if config.platform != ENSEMBLE_PLATFORM:
        backend = backend_of(config)
        known = by_name(backend)
        if known is None or not known.instance:
            line, column = _locate(text, "backend") if "backend" in text else _locate(text, "platform")
            message = f"unable to find backend library for backend '{backend}'"
            result.problems.append(Problem(name, config_path, message, line, column))
        else:
            filename = config.default_model_filename or known.model_filename
            for version in selected:
                result.problems += _check_model_file(name, path / str(version) / filename, backend)
    return result


def _check_model_file(name: str, file: Path, backend: str) -> list[Problem]:
    if not file.exists():
        return [Problem(name, file, f"model file not found for backend '{backend}'")]
    if backend != "python":
        return []
    try:
        tree = ast.parse(file.read_bytes(), str(file))
    except SyntaxError as exc:
        return [Problem(name, file, f"python syntax error: {exc.msg}", exc.lineno, exc.offset)]
    except ValueError as exc:  # NUL bytes
        return [Problem(name, file, f"python source cannot be read: {exc}")]
    if not any(isinstance(node, ast.ClassDef) and node.name == "TritonPythonModel" for node in tree.body):
        return [Problem(name, file, "no class TritonPythonModel is defined at the top level")]
    return []


def _check_ensemble(name: str, result: _Checked, checked: dict[str, _Checked]) -> list[Problem]:
    members: dict[str, Member | None] = {}
    for member in member_names(result.config):
        found = checked.get(member)
        members[member] = Member(found.config, found.versions) if found is not None else None
    if any(found is not None and checked[member].uncompleted for member, found in members.items()):
        # a member's tensors come from its own auto_complete_config, which a check does not run:
        # only missing members can be told
        members = {member: found for member, found in members.items() if found is None}
        if not members:
            return []
    try:
        validate_ensemble_members(result.config, members)
    except TritonError as exc:
        return [Problem(name, result.config_path, exc.message, *_locate(_read_text(result.config_path), exc.message))]
    return []


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _has_model_py(version: Path | None) -> bool:
    return version is not None and (version / "model.py").is_file()


def _defines(file: Path) -> bool:
    """Whether a python model defines ``auto_complete_config`` (without importing it)."""
    try:
        return "auto_complete_config" in file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _locate(text: str, message: str) -> tuple[int | None, int | None]:
    """The line and column of the first name the message quotes (or the word itself) in the config."""
    for needle in [*_QUOTED.findall(message), message]:
        for pattern in (f'"{needle}"', f"{needle}:", f"{needle} {{"):
            index = text.find(pattern)
            if index >= 0:
                line = text.count("\n", 0, index) + 1
                column = index - (text.rfind("\n", 0, index) + 1) + 1
                return line, column
    return None, None
