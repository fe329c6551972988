"""The README's countable claims against what the pack ships and the engine supports: the template
names and counts (workflows/*.json), the model families (p2p_attention's adapters: the UNet families of
adapters.py and dit_blocks._FAMILIES), the refused DiTs (dit_blocks' message) and the node table (the
pack's NODES)."""

from __future__ import annotations

import re

import pytest
from workflow_util import REPO, WORKFLOW_DIR

README = (REPO / "README.md").read_text()
NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
ORDINALS = {w: i + 1 for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth".split())}
TEMPLATES = sorted(p.stem for p in WORKFLOW_DIR.glob("*.json"))
DEMOS = [n for n in TEMPLATES if n.startswith("p2p_demo")]
# How the README names each family the engine serves (dit_blocks' family constants; the UNet ones by
# the names adapters.py gives them).
DIT_NAMES = {"flux": "Flux.1", "sd3": "SD3"}


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def test_every_template_named_in_the_readme_exists_and_every_one_is_named():
    named = set(re.findall(r"`(p2p_[a-z0-9_]+)`", README))
    assert named == set(TEMPLATES), (sorted(named - set(TEMPLATES)), sorted(set(TEMPLATES) - named))


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


def _unet_families() -> list[str]:
    from p2p_attention import adapters

    m = re.search(r"UNet models \(([^)]*)\)", adapters.__doc__)
    return [s.strip() for s in m.group(1).split(",")]


def test_the_engine_families_are_the_readme_families():
    from p2p_attention import dit_blocks

    assert set(dit_blocks._FAMILIES.values()) == set(DIT_NAMES), "a new MM-DiT family: name it in DIT_NAMES and the README"
    families = [*_unet_families(), *DIT_NAMES.values()]
    assert families == ["SD1.x", "SD2.x", "SDXL", "Flux.1", "SD3"], families
    table = re.findall(r"^\| ([^|]+?) \|", _section("Model families"), re.M)[1:]  # past the header
    assert [f for f in families if not any(f in row for row in table)] == [], table
    assert len(table) == 4, table  # SD1.x/SD2.x, SDXL, Flux.1, SD3/SD3.5
    # every sentence that lists the supported models names them all
    claims = {
        "intro": README.split("\n\n")[1],
        "install": re.search(r"Supported\s+models:(.*?)\(see Model families\)", README, re.S).group(1),
        "limits": re.search(r"^- Models:(.*?)\. ", _section("Limits"), re.S | re.M).group(1),
        "P2P Apply": re.search(r"\*\*P2P Apply\*\* \| `model` \(([^)]*)\)", README).group(1),
    }
    for where, text in claims.items():
        text = " ".join(text.split())
        missing = [f for f in families if f not in text]
        assert not missing, f"README ({where}) leaves out {missing}: {text!r}"


@pytest.mark.parametrize("refused", ["Flux.2", "Qwen-Image", "HiDream", "Z-Image"])
def test_the_refused_models_are_the_engines(refused):
    from p2p_attention import dit_blocks

    source = (REPO / "p2p_attention" / "dit_blocks.py").read_text()
    assert refused in source and dit_blocks.dit_family.__doc__  # the refusal message names it
    for section in ("Install in ComfyUI", "Model families", "Limits"):
        assert refused in " ".join(_section(section).split()), f"README ({section}) leaves out {refused}"


def test_the_registry_metadata_ships_its_icon():
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    comfy = meta["tool"]["comfy"]
    assert (REPO / comfy["Icon"]).is_file(), comfy["Icon"]
    assert comfy["requires-comfyui"] and comfy["PublisherId"] and comfy["DisplayName"]
    assert "urls" not in meta["project"], "only an address known to be real belongs in [project.urls]"
