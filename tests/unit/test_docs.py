"""The docs live in the repository and stay honest where a test can cheaply
tell: the README and docs/*.md point at nothing outside the repository and
every relative link in them resolves; every section and saga step rule that
code comments and docstrings cite exists in docs/design.md (and every
section they cite of the HTTP contract in docs/api.md); every route the
gateway serves is in docs/api.md, and docs/api.md claims no route it does
not serve (but in its section of planned routes)."""
import ast
import io
import pathlib
import re
import tokenize

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
API = ROOT / "docs" / "api.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Code whose comments may cite the design, and where the one name is
# docs/design.md; tests and protos may cite it too (checked for resolving).
CODE = ("common", "services", "gateway", "operations", "scripts")
CITING = CODE + ("tests", "protos")
THIS = pathlib.Path(__file__).resolve()

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*<?(\S+?)>?(?:[ \t]+.*)?$", re.M)
HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
EXTERNAL = re.compile(r"^(https?:|mailto:)", re.I)
# A pointer to a place on one machine, not in the repository.
OUTSIDE = re.compile(r"\.\./|file:|(?<![\w.])~/|(?<![\w.:])/(?:work|home|Users|root|mnt|srv)/")
# The old names of the two documents, which were outside the repository.
OLD_NAMES = re.compile(r"(?<![\w/])(?:DESIGN|API)\.md")

ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)[ \t]+(/[^\s`'\")?,;|]*)")
PARAM = re.compile(r"\{[^}/]*\}")

# A citation of the design in a comment: a quoted section after its name,
# and step rules by number ("rule 5", "rules 1, 3 and 7", "Saga step rules" 1, 2).
DESIGN_NAME = r"(?:docs/design\.md|DESIGN\.md)"
DESIGN_SECTION = re.compile(DESIGN_NAME + r"(?:'s)?[,:]?\s+\"([^\"]+)\"")
API_SECTION = re.compile(r"(?:docs/api\.md|API\.md)(?:'s)?[,:]?\s+\"([^\"]+)\"")
RULES = re.compile(r"\brules?\"?\s+(\d+(?:\s*(?:,\s*and|,|and|&)\s*\d+)*)", re.I)
BARE_DESIGN = re.compile(r"(?<![\w/])DESIGN\.md")
STEP_RULES_SECTION = "Saga step rules"


def _prose(text: str) -> str:
    """Markdown without its fenced code blocks (a link there is no link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def headings(path: pathlib.Path) -> list[str]:
    return [match.group(2) for match in HEADING.finditer(_prose(path.read_text()))]


def anchors(path: pathlib.Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in headings(path):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def section(path: pathlib.Path, title: str) -> str:
    """The text under the heading `title`, up to the next heading of the
    same or a higher level."""
    text = _prose(path.read_text())
    for match in HEADING.finditer(text):
        if match.group(2).strip().lower() == title.lower():
            level, start = len(match.group(1)), match.end()
            for later in HEADING.finditer(text, start):
                if len(later.group(1)) <= level:
                    return text[start:later.start()]
            return text[start:]
    raise AssertionError(f"{path.relative_to(ROOT)} has no section {title!r}")


def without_planned(text: str) -> str:
    """The text minus its sections about what is planned, not served."""
    kept, skip_level = [], None
    for line in text.splitlines():
        match = HEADING.match(line)
        if match:
            level = len(match.group(1))
            if skip_level is not None and level <= skip_level:
                skip_level = None
            if skip_level is None and re.search(r"planned|not built yet", match.group(2), re.I):
                skip_level = level
        if skip_level is None:
            kept.append(line)
    return "\n".join(kept)


def links(text: str) -> list[str]:
    prose = _prose(text)
    return [m.group(1) for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK) for m in pattern.finditer(prose)]


# ---- README and docs/*.md ---------------------------------------------------
def test_the_two_documents_are_in_the_repository():
    assert DESIGN.is_file() and API.is_file()
    readme = (ROOT / "README.md").read_text()
    assert "](docs/design.md" in readme and "](docs/api.md" in readme


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_doc_points_at_nothing_outside_the_repository(doc):
    text = doc.read_text()
    outside = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}" for m in OUTSIDE.finditer(text)]
    old = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in OLD_NAMES.finditer(text)]
    assert outside == [], "points outside the repository"
    assert old == [], "names a document that is not in the repository (docs/design.md, docs/api.md)"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_of_a_doc_resolves_in_the_repository(doc):
    broken = []
    for target in links(doc.read_text()):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        if path.startswith("/"):
            broken.append(f"{target}: absolute; links are relative to the file")
            continue
        resolved = (doc.parent / path).resolve() if path else doc
        if resolved != ROOT and ROOT not in resolved.parents:
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no such heading in {resolved.relative_to(ROOT)}")
    assert broken == []


# ---- what the code cites ----------------------------------------------------
def _comment_blocks(source: str) -> list[tuple[int, str]]:
    """(line, text) of each run of consecutive comment lines."""
    blocks: list[tuple[int, str]] = []
    last = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line, text = token.start[0], token.string.lstrip("#").strip()
        if last is not None and line == last + 1 and blocks:
            blocks[-1] = (blocks[-1][0], f"{blocks[-1][1]} {text}")
        else:
            blocks.append((line, text))
        last = line
    return blocks


def _docstrings(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                found.append((body[0].lineno, body[0].value.value))
    return found


def _proto_comments(source: str) -> list[tuple[int, str]]:
    blocks: list[tuple[int, str]] = []
    last = None
    for number, line in enumerate(source.splitlines(), 1):
        if "//" not in line:
            continue
        text = line.split("//", 1)[1].strip()
        if last is not None and number == last + 1 and blocks:
            blocks[-1] = (blocks[-1][0], f"{blocks[-1][1]} {text}")
        else:
            blocks.append((number, text))
        last = number
    return blocks


def citing_texts() -> list[tuple[str, str]]:
    """("path:line", whitespace-normalised text) of every comment and
    docstring of the code, tests and protos."""
    texts = []
    for top in CITING:
        for path in sorted((ROOT / top).rglob("*")):
            if path.resolve() == THIS or "__pycache__" in path.parts:
                continue
            if path.suffix == ".py":
                source = path.read_text()
                found = _comment_blocks(source) + _docstrings(source)
            elif path.suffix == ".proto":
                found = _proto_comments(path.read_text())
            else:
                continue
            texts += [(f"{path.relative_to(ROOT)}:{line}", " ".join(text.split())) for line, text in found]
    return texts


def cited_rules(text: str) -> set[int]:
    return {int(n) for match in RULES.finditer(text) for n in re.findall(r"\d+", match.group(1))}


def test_the_citation_patterns_read_what_the_code_writes():
    assert cited_rules("(docs/design.md, saga step rules 1 and 2)") == {1, 2}
    assert cited_rules('(docs/design.md "Saga step rules" 1, 2, 4, 5)') == {1, 2, 4, 5}
    assert cited_rules("(DESIGN.md saga rules 3, 6 and 7) and (rule 4: a no-op)") == {3, 4, 6, 7}
    assert DESIGN_SECTION.findall('(docs/design.md "Identity and trust"; API.md Payments)') == ["Identity and trust"]
    assert API_SECTION.findall('(API.md "Errors")') == ["Errors"]


def test_the_design_numbers_the_saga_step_rules():
    numbers = [int(n) for n in re.findall(r"^(\d+)\.\s", section(DESIGN, STEP_RULES_SECTION), re.M)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 7


def test_every_rule_the_code_cites_is_in_the_design():
    rules = {int(n) for n in re.findall(r"^(\d+)\.\s", section(DESIGN, STEP_RULES_SECTION), re.M)}
    cited = {(where, rule) for where, text in citing_texts() for rule in cited_rules(text)}
    assert {rule for _, rule in cited} >= {1, 2, 3, 4, 5, 6, 7}, "the citations were not found: is the pattern stale?"
    assert sorted((where, rule) for where, rule in cited if rule not in rules) == []


def test_every_section_the_code_cites_is_in_the_docs():
    design = {h.strip().lower() for h in headings(DESIGN)}
    api = {h.strip().lower() for h in headings(API)}
    missing = []
    for where, text in citing_texts():
        missing += [f"{where}: docs/design.md {name!r}" for name in DESIGN_SECTION.findall(text)
                    if name.strip().lower() not in design]
        missing += [f"{where}: docs/api.md {name!r}" for name in API_SECTION.findall(text)
                    if name.strip().lower() not in api]
        if re.search(r"saga (?:step )?rules", text, re.I) and STEP_RULES_SECTION.lower() not in design:
            missing.append(f"{where}: docs/design.md {STEP_RULES_SECTION!r}")
    assert missing == []


def test_the_code_cites_the_design_by_its_path_in_the_repository():
    bare = [where for where, text in citing_texts() if where.startswith(CODE) and BARE_DESIGN.search(text)]
    assert bare == [], "say docs/design.md"


# ---- the gateway's routes ---------------------------------------------------
def _route_key(method: str, path: str) -> tuple[str, str]:
    return method.upper(), PARAM.sub("{}", path.rstrip("/") or "/")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> set[tuple[str, str]]:
    """(method, path with its parameters blanked) of every route the gateway
    registers, HEAD aside."""
    from gateway.app import create_app
    from gateway.settings import Settings

    app = create_app(Settings(adtech_jwt_secret="docs-test-jwt-secret-0123456789",
                              adtech_internal_token="docs-test-internal-token-0123456789",
                              adtech_data_dir=tmp_path_factory.mktemp("gateway")))
    found: set[tuple[str, str]] = set()

    def walk(routes, prefix: str = "") -> None:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:  # FastAPI keeps an included router as one node
                context = getattr(route, "include_context", None)
                walk(included.routes, prefix + (getattr(context, "prefix", "") or ""))
                continue
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    found.add(_route_key(method, prefix + route.path))

    walk(app.routes)
    for path, operations in app.openapi()["paths"].items():
        found |= {_route_key(method, path) for method in operations}
    return found


def documented_routes(text: str) -> set[tuple[str, str]]:
    return {_route_key(method, path) for method, path in ROUTE.findall(text)}


def test_every_route_the_gateway_serves_is_in_the_api_doc(served):
    assert len(served) >= 20, "the gateway's routes were not found: is the walk stale?"
    assert sorted(served - documented_routes(API.read_text())) == []


def test_the_docs_claim_no_route_the_gateway_does_not_serve(served):
    claimed = set()
    for doc in DOCS:
        claimed |= documented_routes(without_planned(_prose(doc.read_text())))
    assert sorted(claimed - served) == []
