"""The README's countable claims against what the pack ships and the engine supports: the template
names and counts (workflows/*.json), the model families (p2p_attention.families: UNET_LABELS and every
family's label), the models refused by name (families.NOT_YET), the node table (the pack's NODES) and
the registry metadata (pyproject.toml)."""

from __future__ import annotations

import re

from workflow_util import REPO, WORKFLOW_DIR

README = (REPO / "README.md").read_text()
NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
ORDINALS = {w: i + 1 for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth".split())}
TEMPLATES = sorted(p.stem for p in WORKFLOW_DIR.glob("*.json"))
DEMOS = [n for n in TEMPLATES if n.startswith("p2p_demo")]
def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def test_every_template_named_in_the_readme_exists_and_every_one_is_named():
    named = set(re.findall(r"`(p2p_[a-z0-9_]+)`", README))
    assert named == set(TEMPLATES), (sorted(named - set(TEMPLATES)), sorted(set(TEMPLATES) - named))


def test_the_readme_counts_all_templates_right():
    number = "|".join(NUMBERS)
    counts = re.findall(rf"the pack's ({number}|\d+) templates", README, re.I)
    assert counts, "README: no count of the templates"
    for word in counts:
        assert NUMBERS.get(word.lower(), word) in (len(TEMPLATES), str(len(TEMPLATES))), (
            f"README says {word} templates, workflows/ has {len(TEMPLATES)}")


def test_the_readme_counts_the_demo_templates_right():
    number = "|".join(NUMBERS)
    counts = re.findall(rf"\b({number}|\d+) (?:`p2p_demo[^`]*` |demo-model |demo )templates", README, re.I)
    assert counts, "README: no count of the demo templates"
    for word in counts:
        assert NUMBERS.get(word.lower(), word) in (len(DEMOS), str(len(DEMOS))), f"README says {word} demo templates, workflows/ has {len(DEMOS)}"
    # "the first five on P2P Demo Model, the sixth and seventh on P2P Demo Flux Model"
    loaders = [("P2PDemoFluxModel" if "P2PDemoFluxModel" in (WORKFLOW_DIR / "api" / f"{n}.json").read_text()
                else "P2PDemoModel") for n in DEMOS]
    m = re.search(r"first (\w+) on the \*\*P2P Demo Model\*\*", README)
    assert m and loaders[: NUMBERS[m.group(1)]] == ["P2PDemoModel"] * NUMBERS[m.group(1)], loaders
    assert loaders.count("P2PDemoModel") == NUMBERS[m.group(1)], loaders
    m = re.search(r"the (\w+) and (\w+) on \*\*P2P Demo Flux Model\*\*", README)
    assert m and [ORDINALS[w] for w in m.groups()] == [i + 1 for i, x in enumerate(loaders) if x == "P2PDemoFluxModel"]


def test_the_node_table_lists_every_node_of_the_pack(pack):
    names = [cls.define_schema().display_name for cls in pack.nodes.NODES]
    rows = re.findall(r"^\| \*\*(P2P [^*]+)\*\* \|", _section("Nodes"), re.M)
    assert rows == names, (rows, names)


def _families() -> tuple[list[str], list[str]]:
    """(every family label the engine serves: the UNet ones, then families.FAMILIES'; the names of the
    models it refuses by name, families.NOT_YET)."""
    from p2p_attention import families

    labels = [*families.UNET_LABELS, *(f.label for f in families.FAMILIES)]
    refused = [n.strip() for n in re.split(r",| and ", families.NOT_YET) if n.strip()]
    return labels, refused


def test_the_engine_families_are_the_readme_families():
    labels, _ = _families()
    table = " ".join(_section("Model families").split())
    assert [f for f in labels if f not in table and f.replace("/", ", ") not in table] == [], labels
    # every sentence that lists the supported models names every family (Flux.2 klein and dev as "Flux.2")
    groups = sorted({f.split(" ")[0] for f in labels})
    claims = {
        "intro": README.split("\n\n")[1],
        "install": re.search(r"Supported\s+models:(.*?)\(see\s+Model families\)", README, re.S).group(1),
        "limits": re.search(r"^- Models:(.*?)\. ", _section("Limits"), re.S | re.M).group(1),
        "P2P Apply": re.search(r"\*\*P2P Apply\*\* \| `model` \(([^)]*)\)", README).group(1),
    }
    for where, text in claims.items():
        text = " ".join(text.split())
        missing = [f for f in groups if f not in text]
        assert not missing, f"README ({where}) leaves out {missing}: {text!r}"


def test_the_refused_models_are_the_engines():
    _, refused = _families()
    assert refused, "families.NOT_YET names no model"
    for section in ("Install in ComfyUI", "Model families", "Limits"):
        text = " ".join(_section(section).split())
        missing = [m for m in refused if m.removesuffix(" DiTs") not in text]
        assert not missing, f"README ({section}) leaves out the refused {missing}"


def test_the_registry_metadata_ships_its_icon():
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    comfy = meta["tool"]["comfy"]
    assert (REPO / comfy["Icon"]).is_file(), comfy["Icon"]
    assert comfy["requires-comfyui"] and comfy["PublisherId"] and comfy["DisplayName"]
    assert "urls" not in meta["project"], "only an address known to be real belongs in [project.urls]"
