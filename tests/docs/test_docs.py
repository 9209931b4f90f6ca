"""The documentation's links, commands and first request are true.

* every relative link of README.md, docs/*.md, benchmarks/README.md and deploy/**/README.md leads to
  a file that exists, and a ``#anchor`` to a heading of that file (GitHub's slugs);
* every ``tritonlite-server`` command line in a fenced code block parses with the server's own
  parser, with flags spelled in full, none refused;
* every script a page names (``scripts/``, ``benchmarks/``, ``examples/`` ``.py``) exists and, where it
  takes arguments, answers ``--help``;
* the README's first request, sent to a real server on the repository the README serves, gets the
  answer the README shows; the quickstart's curl requests answer 200.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import requests
from serverutil import RunningServer

from tritonlite.cli import build_parser
from tritonlite.triton_flags import inert_flag_notes, refused_flag

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# pages whose links are checked (the last two only read: other people's pages)
PAGES = sorted([README, *DOCS.glob("*.md"), ROOT / "benchmarks" / "README.md", *(ROOT / "deploy").rglob("README.md")])
# pages whose commands are checked
COMMAND_PAGES = [README, *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@dataclass
class Block:
    """A fenced code block: its info string, its text and the line it starts on."""

    info: str
    text: str
    line: int


def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[Block]]:
    """The lines outside fenced code blocks (with their numbers) and the fenced blocks."""
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    fence = ""
    info = ""
    start = 0
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if not fence:
            if match:
                fence, info, start, body = match.group(2), match.group(3).strip(), number, []
            else:
                prose.append((number, line))
        elif match and match.group(2).startswith(fence) and not match.group(3).strip():
            blocks.append(Block(info, "\n".join(body), start))
            fence = ""
        else:
            body.append(line)
    assert not fence, f"a code block opened on line {start} is never closed"
    return prose, blocks


@cache
def page_parts(path: Path) -> tuple[list[tuple[int, str]], list[Block]]:
    return split_markdown(path.read_text())


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: markup dropped, lower case, punctuation gone, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    kept = "".join(
        ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM" or unicodedata.category(ch) == "Pc"
    )
    return kept.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 suffixes for repeated ones."""
    prose, _ = page_parts(path)
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose:
        match = re.match(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    for _, line in prose:  # explicit HTML anchors
        found.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", line))
    return frozenset(found)


def links(path: Path) -> list[tuple[int, str]]:
    """The link targets of a page, outside code blocks and code spans."""
    prose, _ = page_parts(path)
    found = []
    for number, line in prose:
        line = INLINE_CODE.sub("", line)
        found += [(number, target) for target in LINK.findall(line)]
    return found


# --------------------------------------------------------------------------- the checker itself


def test_slugs_follow_github():
    assert github_slug("Differences from Triton") == "differences-from-triton"
    assert github_slug("What differs from `tritonserver`") == "what-differs-from-tritonserver"
    assert github_slug("Metrics, statistics, tracing and logging") == "metrics-statistics-tracing-and-logging"
    assert github_slug("Python extras (`pip install -e .`)") == "python-extras-pip-install--e-"
    assert github_slug("ONNX backend vs the physical limit") == "onnx-backend-vs-the-physical-limit"


def test_split_markdown_finds_links_and_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\nSee [a](a.md#x) and `[not](b.md)`.\n\n```bash\n[no](c.md)\ntritonlite-server --x\n```\n## Title\n"
    )
    prose, blocks = split_markdown(page.read_text())
    assert [b.text for b in blocks] == ["[no](c.md)\ntritonlite-server --x"]
    assert links(page) == [(3, "a.md#x")]
    assert anchors(page) == {"title", "title-1"}


def test_the_pages_exist():
    names = {p.name for p in DOCS.glob("*.md")}
    for name in (
        "quickstart.md", "model-repository.md", "protocols.md", "backends.md", "scheduling.md",
        "metrics-and-tracing.md", "deployment.md", "differences-from-triton.md", "benchmarks.md",
        "status-page.md",
    ):  # fmt: skip
        assert name in names
    readme_targets = {target.split("#")[0] for _, target in links(README)}
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in readme_targets, f"README links no docs/{page.name}"


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 130


# --------------------------------------------------------------------------- (a) links


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_relative_links_resolve(page: Path):
    problems = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            problems.append(f"{rel(page)}:{number}: {target}: no such file")
            continue
        if ROOT not in destination.parents and destination != ROOT:
            problems.append(f"{rel(page)}:{number}: {target}: leads out of the repository")
            continue
        if anchor:
            if destination.suffix != ".md":
                problems.append(f"{rel(page)}:{number}: {target}: an anchor into a file that is not markdown")
            elif anchor not in anchors(destination):
                problems.append(f"{rel(page)}:{number}: {target}: no heading #{anchor} in {rel(destination)}")
    assert not problems, "\n".join(problems)


def test_the_status_page_screenshot_is_an_image():
    image = DOCS / "images" / "status-page.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(target == "images/status-page.png" for _, target in links(DOCS / "status-page.md"))


# --------------------------------------------------------------------------- (b) tritonlite-server commands


SHELL_OPERATORS = {"&", "&&", "||", "|", ";", ">", "2>&1", ">>"}


def shell_commands(block: Block) -> list[list[str]]:
    """The commands of a shell block: continuations joined, comments dropped, split at operators."""
    if block.info.split()[:1] not in ([], ["bash"], ["sh"], ["shell"], ["console"]):
        return []
    commands = []
    for line in block.text.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an open quote across lines (a JSON body): the words before it
            try:
                words = shlex.split(re.split(r"['\"]", line, maxsplit=1)[0], comments=True)
            except ValueError:
                continue
        current: list[str] = []
        for word in words:
            if word in SHELL_OPERATORS:
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
        if current:
            commands.append(current)
    return commands


def server_commands() -> list[tuple[str, list[str]]]:
    """Every tritonlite-server command line of the fenced blocks: (where, arguments)."""
    found = []
    for page in COMMAND_PAGES:
        for block in page_parts(page)[1]:
            for words in shell_commands(block):
                while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value prefixes
                    words = words[1:]
                if words and Path(words[0]).name == "tritonlite-server":
                    found.append((f"{rel(page)}:{block.line}", words[1:]))
    return found


SERVER_COMMANDS = server_commands()


def test_server_commands_are_found():
    assert len(SERVER_COMMANDS) >= 10
    assert any(where.startswith("README.md") for where, _ in SERVER_COMMANDS)


@cache
def option_strings() -> frozenset[str]:
    return frozenset(opt for action in build_parser()._actions for opt in action.option_strings)


@pytest.mark.parametrize(("where", "args"), SERVER_COMMANDS, ids=[f"{w}:{' '.join(a)}" for w, a in SERVER_COMMANDS])
def test_server_command_parses(where: str, args: list[str]):
    for arg in args:
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            assert name in option_strings(), f"{where}: {name} is not a flag of tritonlite-server (spelled in full)"
    assert refused_flag(args) is None, f"{where}: refused"
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"{where}: tritonlite-server {' '.join(args)} does not parse") from exc
    _, refusal = inert_flag_notes(parsed)
    assert refusal is None, f"{where}: {refusal}"
    for repository in parsed.model_repository:
        if repository.startswith("examples/"):
            assert (ROOT / repository).is_dir(), f"{where}: {repository} does not exist"


def test_a_wrong_flag_is_caught():
    """The check fails on what it should: a misspelt flag, a flag that is not there, a refused one."""
    with pytest.raises(AssertionError):
        test_server_command_parses("x", ["--model-repo=/models"])  # argparse alone would take the prefix
    with pytest.raises(AssertionError):
        test_server_command_parses("x", ["--model-repository=/models", "--no-such-flag"])
    with pytest.raises(AssertionError):
        test_server_command_parses("x", ["--model-repository=/models", "--allow-sagemaker=true"])
    with pytest.raises(AssertionError):
        test_server_command_parses("x", ["--model-repository=examples/no_such_repository"])


# --------------------------------------------------------------------------- (c) scripts


SCRIPT = re.compile(r"(?<![\w/.])((?:scripts|benchmarks|examples)/[\w./-]+\.(?:py|sh))\b")


def code_texts(page: Path) -> list[tuple[int, str]]:
    """A page's code, as (line, text): each fenced block, and each prose line's inline code spans."""
    prose, blocks = page_parts(page)
    texts = [(block.line, block.text) for block in blocks]
    texts += [(number, " ".join(m.group(2) for m in INLINE_CODE.finditer(line))) for number, line in prose]
    return texts


def referenced_scripts() -> dict[str, str]:
    """Every scripts/, benchmarks/ or examples/ script the pages name, in a code block or span: path -> where."""
    found: dict[str, str] = {}
    for page in COMMAND_PAGES:
        for number, text in code_texts(page):
            for path in SCRIPT.findall(text):
                found.setdefault(path, f"{rel(page)}:{number}")
    return found


SCRIPTS = referenced_scripts()


def test_scripts_are_found():
    assert "scripts/get_reference.py" in SCRIPTS
    assert "benchmarks/suite.py" in SCRIPTS


@pytest.mark.parametrize("path", sorted(SCRIPTS))
def test_script_exists_and_answers_help(path: str):
    script = ROOT / path
    assert script.is_file(), f"{SCRIPTS[path]}: {path} does not exist"
    if script.suffix != ".py":
        return
    source = script.read_text()
    compile(source, path, "exec")
    if "argparse" not in source:
        # takes no options: running it with --help would do its work (write files); compiling is the check
        return
    run = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if run.returncode != 0 and re.search(r"^(ModuleNotFoundError|ImportError): ", run.stderr, re.MULTILINE):
        pytest.skip(f"{path} needs a package not installed here: {run.stderr.strip().splitlines()[-1]}")
    assert run.returncode == 0, f"{path} --help exited {run.returncode}:\n{run.stderr[-2000:]}"
    assert "usage:" in run.stdout


REPO_PATH = re.compile(r"(?<![\w/.$-])((?:docker|deploy|examples|scripts|benchmarks|proto|src|tests)/[\w./-]*[\w/])")
GENERATED = ("benchmarks/results",)  # written by the benchmarks, not in the repository


def test_named_paths_exist():
    """Paths of the repository named in code (blocks and spans) exist: files, folders, manifests."""
    problems = []
    count = 0
    for page in COMMAND_PAGES:
        for number, text in code_texts(page):
            for path in REPO_PATH.findall(text):
                count += 1
                if not path.startswith(GENERATED) and not (ROOT / path).exists():
                    problems.append(f"{rel(page)}:{number}: {path} does not exist")
    assert count >= 30
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- (d) the README's first request


def curl_request(words: list[str]) -> tuple[str, str, dict[str, str], str | None]:
    """(method, url, headers, body) of a curl command's words."""
    method, url, headers, body = "GET", "", {}, None
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-X", "--request"):
            method, i = words[i + 1], i + 1
        elif word in ("-d", "--data", "--data-binary"):
            body, i = words[i + 1], i + 1
            if method == "GET":
                method = "POST"
        elif word in ("-H", "--header"):
            key, _, value = words[i + 1].partition(":")
            headers[key.strip()] = value.strip()
            i += 1
        elif word in ("-o", "-w", "--output", "--write-out"):
            i += 1
        elif not word.startswith("-"):
            url = word
        i += 1
    return method, url, headers, body


def curl_commands(block: Block) -> list[list[str]]:
    """The curl commands of a shell block, a quoted body spread over lines kept whole."""
    commands = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        text = lines[i]
        while i + 1 < len(lines) and (text.count("'") % 2 == 1 or text.rstrip().endswith("\\")):
            i += 1
            text = (text.rstrip()[:-1] if text.rstrip().endswith("\\") else text + "\n") + lines[i]
        words = shlex.split(text, comments=True)
        if words and words[0] == "curl":
            commands.append(words)
        i += 1
    return commands


def readme_first_request() -> tuple[str, list[str], dict]:
    """The repository the README serves, the infer curl and the answer it shows."""
    _, blocks = page_parts(README)
    served = [
        args for where, args in SERVER_COMMANDS if where.startswith("README.md") and any("examples/" in a for a in args)
    ]
    assert served, "the README serves no example repository"
    repository = build_parser().parse_args(served[0]).model_repository[0]
    for index, block in enumerate(blocks):
        infers = [words for words in curl_commands(block) if "/infer" in curl_request(words)[1]]
        if infers:
            answer = next(b for b in blocks[index + 1 :] if b.info == "json")
            return repository, infers[0], json.loads(answer.text)
    raise AssertionError("the README has no infer request")


@pytest.fixture(scope="module")
def example_server():
    repository, _, _ = readme_first_request()
    server = RunningServer([ROOT / repository])
    yield server
    server.stop()


def send(server: RunningServer, words: list[str]) -> requests.Response:
    method, url, headers, body = curl_request(words)
    match = re.match(r"^(?:https?://)?(localhost|127\.0\.0\.1):(\d+)(/.*)$", url)
    assert match, f"not a request to the local server: {url}"
    assert int(match.group(2)) == build_parser().get_default("http_port"), f"{url}: not the default HTTP port"
    data = body.encode() if body else None
    return requests.request(method, f"http://{server.http}{match.group(3)}", headers=headers, data=data, timeout=30)


def test_readme_first_request_answers_as_shown(example_server):
    repository, words, shown = readme_first_request()
    assert repository == "examples/model_repository"
    answer = send(example_server, words)
    assert answer.status_code == 200, answer.text
    assert answer.json() == shown


def test_quickstart_requests_answer(example_server):
    _, blocks = page_parts(DOCS / "quickstart.md")
    commands = [words for block in blocks for words in curl_commands(block)]
    assert len(commands) >= 5
    for words in commands:
        answer = send(example_server, words)
        assert answer.status_code == 200, f"{shlex.join(words)}: {answer.status_code} {answer.text}"
        if "string_upper" in curl_request(words)[1]:
            outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
            assert outputs == {"UPPER": ["HELLO", "WÖRLD"], "LENGTH": [5, 6]}
