"""Rewrites botapi.json, the Bot API specification the sandbox's answers
are checked against, from the JSON scrape of the official Bot API page that
aiogram ships in its source distribution (.butcher/schema/schema.json).

    python tests/integration/telegram/botapi-spec/update.py aiogram==3.31.0
    python tests/integration/telegram/botapi-spec/update.py path/to/aiogram-3.31.0.tar.gz

Only what a check needs is kept: each type's fields (type as the docs write
it, required or optional, the constant a field "always" holds, the values a
`type` or `status` field can take), the members of each union type, each
method's parameters and what it returns on success (read from the method's
description: "Returns a ChatMember object on success")."""
import json
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
SCHEMA_MEMBER = ".butcher/schema/schema.json"
QUOTED = re.compile(r"[\"'\u201c]([a-z_0-9]+)[\"'\u201d]")
ALWAYS = re.compile(r"\b[Aa]lways [\"'\u201c]([^\"'\u201d]+)[\"'\u201d]")
ALWAYS_NUMBER = re.compile(r"^Always (-?\d+)\.")
CAN_BE = re.compile(r"\b[Cc]an be (.*)$")
MEMBER_LINE = re.compile(r"^ ?- ([A-Z][A-Za-z]+)$", re.M)


def sdist(argument: str) -> pathlib.Path:
    """The aiogram source distribution: a path, or a requirement pip downloads."""
    path = pathlib.Path(argument)
    if path.exists():
        return path
    target = pathlib.Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(target),
                    argument], check=True)
    [found] = target.glob("aiogram-*.tar.gz")
    return found


def scrape(path: pathlib.Path) -> tuple[dict, str]:
    with tarfile.open(path) as archive:
        [member] = [m for m in archive.getmembers() if m.name.endswith(SCHEMA_MEMBER)]
        return json.load(archive.extractfile(member)), member.name.split("/")[0]


def field(annotation: dict) -> dict:
    found = {"type": annotation["type"], "required": annotation["required"]}
    words = annotation["description"]
    always = ALWAYS.search(words)
    number = ALWAYS_NUMBER.search(words)
    if always and annotation["type"] == "String":
        found["const"] = always.group(1)
    elif number and annotation["type"] == "Integer":
        found["const"] = int(number.group(1))
    elif annotation["name"] in ("type", "status") and annotation["type"] == "String":
        values = CAN_BE.search(words)
        if values:
            found["enum"] = QUOTED.findall(values.group(1))
    return found


def returns(description: str, type_names: set[str]) -> str | None:
    """What a method's description says it returns on success: "Message or
    True", "Array of ChatMember", ..."""
    found: list[str] = []
    for sentence in re.split(r"(?<=\.)\s+", description):
        if "return" not in sentence.lower():
            continue
        for array, name in re.findall(r"(Array of )?\b([A-Z][A-Za-z]+)\b", sentence):
            if name in type_names or name == "True":
                expression = f"{array}{name}"
                if expression not in found:
                    found.append(expression)
    return " or ".join(found) or None


def convert(schema: dict, source: str) -> dict:
    children = [child for group in schema["items"] for child in group["children"]]
    type_names = {child["name"] for child in children if child["category"] == "types"}
    types, methods = {}, {}
    for child in children:
        if child["category"] == "types":
            members = MEMBER_LINE.findall(child["description"])
            if not child["annotations"] and members and all(m in type_names for m in members):
                types[child["name"]] = {"one_of": members}
            else:
                types[child["name"]] = {"fields": {a["name"]: field(a) for a in child["annotations"]}}
        else:
            methods[child["name"]] = {"params": {a["name"]: {"type": a["type"], "required": a["required"]}
                                                 for a in child["annotations"]},
                                      "returns": returns(child["description"], type_names)}
    return {"version": schema["api"]["version"], "release_date": schema["api"]["release_date"], "source": source,
            "types": types, "methods": methods}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sdist(sys.argv[1])
    schema, name = scrape(path)
    spec = convert(schema, f"{name} (PyPI source distribution), {SCHEMA_MEMBER}")
    (HERE / "botapi.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    print(f"botapi.json: Bot API {spec['version']} of {spec['release_date']}, {len(spec['types'])} types,"
          f" {len(spec['methods'])} methods, from {name}")


if __name__ == "__main__":
    main()
