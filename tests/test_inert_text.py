"""Text from a registry or a storage tree is inert wherever it is shown: in the plots
(no mathtext, no control character), in the HTML report (escaped, printable), in the
explorer's widgets. Issue 25: a storage folder named ``m$\\frac$x`` crashed
``reginsight report ROOT`` in matplotlib's mathtext.

No registry is needed: a storage tree is written by hand (names still plausible as
folders), and the bundled sample is renamed with fully hostile strings."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.cbook import is_math_text
from matplotlib.text import Text

import reginsight as ri
from reginsight._cli import main
from reginsight._text import plot_label, printable
from reginsight.inventory._frames import build
from reginsight.present._report import render_report
from reginsight.present._widgets import Explorer
from tests.test_analysis import inventory

SAMPLE = ri.Inventory.load(Path(__file__).resolve().parent.parent / "data" / "sample")

SCRIPT = "<script>alert(1)</script>"
#: the sample's nine repositories, each renamed to something a storage tree or a saved
#: inventory may hold: markup, an attribute break-out, an entity, mathtext (odd and
#: even ``$``), a bidi override, control characters, a legend's hidden prefix,
#: invisible and line-breaking format characters
HOSTILE = [SCRIPT, '"onload=alert(1) x="', "&amp;lt;b&gt;", r"m$\frac$x", "$x$",
           "a\u202eexe.txt", "ctl\x1b[31mred\x07\r\nnext", "_hidden", "zero\u200bwidth\u2028"]
#: what no output may hold: every one of them would act rather than show
ACTIVE = ["\u202e", "\u2066", "\x1b", "\x07", "\r", "\u200b", "\u2028"]
#: the only elements and attributes the report and the explorer's panes write
ELEMENTS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div",
            "span", "b", "i", "small", "br", "code", "figure", "img", "table", "thead",
            "tbody", "tr", "th", "td", "pre", "a"}
ATTRIBUTES = {"lang", "charset", "name", "content", "class", "role", "alt", "src", "style",
              "title", "href", "download"}


# ------------------------------------------------------------- hostile inventories


def _renamed(column: pd.Series, rename: Callable[[str], str]) -> pd.Series:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.rename_categories(lambda value: rename(str(value)))
    return column.map(lambda value: value if pd.isna(value) else rename(str(value))
                      ).astype(column.dtype)


def _same(text: str) -> str:
    return text


def _with_names(inv: ri.Inventory, names: dict[str, str], *, registry: str | None = None,
                tag: Callable[[str], str] = _same,
                media_type: Callable[[str], str] = _same) -> ri.Inventory:
    """``inv`` with its repositories renamed by ``names`` in every frame, its tags by
    ``tag``, its media and artifact types by ``media_type``: the same figures."""
    frames = {}
    for frame_name, frame in inv.frames():
        frame = frame.copy()
        if "repository" in frame:
            frame["repository"] = _renamed(frame["repository"],
                                           lambda name: names.get(name, name))
        if frame_name == "tags":
            frame["tag"] = _renamed(frame["tag"], tag)
        for column in ("media_type", "artifact_type"):
            if column in frame and frame_name != "blobs":
                frame[column] = _renamed(frame[column], media_type)
        frames[frame_name] = frame
    return ri.Inventory(registry=registry or inv.registry, taken_at=inv.taken_at, **frames)


#: the sample's repository -> its hostile name
NAMES = dict(zip(sorted(SAMPLE.tags["repository"].astype(str).unique()), HOSTILE, strict=True))


def _hostile_sample() -> ri.Inventory:
    """The sample with every repository, tag, media type, artifact type and error
    replaced by hostile text; the figures are the sample's."""
    inv = _with_names(SAMPLE, NAMES, registry=f"http://x.test/{SCRIPT}$r$\u202e",
                      tag=lambda tag: f"{tag}<b>$y$\u202e\x1b[2J",
                      media_type=lambda media_type: f"{media_type}<i>$z$\u2066")
    inv.errors = build("errors", [
        (SCRIPT, "$v$", "tag", f"NotFound: {SCRIPT} \x1b]0;title\x07"),
        (r"m$\frac$x", "\u202ev1", "manifest", "bad &amp; $\\frac$ \u202e")])
    return inv


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _storage(root: Path, images: dict[str, list[str]]) -> Path:
    """A Distribution storage tree written by hand: each repository (folder names as
    given) gets one image, tagged with each of its tags, sharing a base layer."""
    v2 = root / "docker/registry/v2"

    def blob(data: bytes) -> str:
        digest = _digest(data)
        path = v2 / "blobs/sha256" / digest[7:9] / digest[7:] / "data"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return digest

    def link(path: Path, digest: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "link").write_text(digest)

    base = blob(b"base layer" * 1000)
    for number, (repository, tags) in enumerate(images.items()):
        own = blob(f"layer of {number}".encode() * 500)
        config = blob(json.dumps({"architecture": "amd64", "os": "linux",
                                  "created": f"2026-0{number + 1}-01T00:00:00Z",
                                  "rootfs": {"type": "layers", "diff_ids": []}}).encode())
        manifest = blob(json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config, "size": 100},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer, "size": size} for layer, size in (
                            (base, 10000), (own, 500 * len(f"layer of {number}")))],
        }).encode())
        repo = v2 / "repositories" / repository
        link(repo / "_manifests/revisions/sha256" / manifest[7:], manifest)
        for layer in (base, own, config):
            link(repo / "_layers/sha256" / layer[7:], layer)
        for tag in tags:
            link(repo / "_manifests/tags" / tag / "current", manifest)
            link(repo / "_manifests/tags" / tag / "index/sha256" / manifest[7:], manifest)
    return root


#: plausible folder names: what a storage tree's listing really can hold (a component
#: starts with [a-z0-9]; "/" splits components, so a name may still close a tag)
FOLDERS = {r"m$\frac$x": ["v1", "$\\frac$"],
           "team/x<script>alert(1)</script>": ["v1", "<img src=x onerror=alert(1)>"],
           "web/x$y$": ["latest", "a\u202egpj.exe"]}


# ------------------------------------------------------------- what inert means


def _inert_plot_text(text: str) -> None:
    """A matplotlib string that shows as written: no mathtext, nothing unprintable."""
    assert text.isprintable(), repr(text)
    assert not is_math_text(text), repr(text)
    assert text.count("$") == text.count(r"\$"), repr(text)  # every $ escaped


def _shown(text: str) -> str:
    """What matplotlib draws for a label that is not math."""
    return text.replace(r"\$", "$")


class _Markup(HTMLParser):
    """Every element, attribute and text run of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: set[str] = set()
        self.attributes: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _inert_html(page: str) -> str:
    """Check ``page`` holds only the markup our code writes, and return its text."""
    assert "<script" not in page.lower() and "<img src=x" not in page.lower()
    assert not any(char in page for char in ACTIVE)
    parser = _Markup()
    parser.feed(page)
    parser.close()
    assert parser.elements <= ELEMENTS, parser.elements - ELEMENTS
    assert parser.attributes <= ATTRIBUTES, parser.attributes - ATTRIBUTES
    return "".join(parser.text)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def hostile() -> ri.Inventory:
    return _hostile_sample()


# ------------------------------------------------------------- plots

PLOTS = [ri.plot_storage, ri.plot_storage_by_role, ri.plot_layer_sharing,
         ri.plot_sharing_matrix, ri.plot_image_age]


def _png_texts(ax: plt.Axes) -> list[str]:
    """Draw the whole figure to PNG (mathtext would raise here) and give every text
    matplotlib drew: titles, tick labels, legend entries, annotations."""
    figure = ax.figure
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    return [t.get_text() for t in figure.findobj(Text) if t.get_text()]


@pytest.mark.parametrize("plot", PLOTS, ids=lambda plot: plot.__name__)
def test_every_plot_draws_hostile_names_literally(hostile, plot):
    texts = _png_texts(plot(hostile))
    for text in texts:
        _inert_plot_text(text)
    # the same plot of the sample, each repository it names read as its hostile name's
    # printable self ($ and all): the texts drawn, one for one
    expected = [printable(NAMES.get(text, text)).strip() for text in _png_texts(plot(SAMPLE))]
    assert sorted(_shown(text).strip() for text in texts) == sorted(expected)
    if plot not in (ri.plot_storage_by_role, ri.plot_layer_sharing):  # these name none
        assert {r"m$\frac$x", "$x$"} & set(expected)


def test_bars_keep_one_row_per_repository_and_legends_keep_every_name(hostile):
    ax = ri.plot_storage(hostile)
    labels = [_shown(t.get_text()) for t in ax.get_yticklabels()]
    assert len(labels) == len(set(labels)) == len(ax.containers[0])
    ax = ri.plot_image_age(hostile)
    legend = [_shown(t.get_text()).strip() for t in ax.get_legend().get_texts()]
    assert "_hidden" in legend  # matplotlib drops a label that starts with "_"
    ax = ri.plot_growth(SAMPLE, hostile)
    _png_texts(ax)
    assert {_shown(t.get_text()) for t in ax.get_yticklabels()} >= {r"m$\frac$x", "$x$"}


def test_names_that_read_alike_once_printable_keep_a_bar_each():
    inv = _with_names(inventory(), {"a": "x\ny", "b": "x\\ny"})  # a newline; a backslash
    for ax in (ri.plot_storage(inv), ri.plot_growth(inv, inv)):
        assert [t.get_text() for t in ax.get_yticklabels()] == ["x\\ny", "x\\ny"]
        assert len({bar.get_y() for bar in ax.patches}) == 2  # not drawn onto one row


def test_a_label_reads_the_same_however_many_dollars_and_backslashes():
    """plot_label's escaping is undone exactly by matplotlib's non-math path."""
    fig, ax = plt.subplots()
    for name in ("$", "$$", r"\$", "a\\", r"\\$x$", "$\\frac{1}{2}$"):
        label = plot_label(name)
        _inert_plot_text(label)
        text = ax.text(0, 0, label)
        fig.canvas.draw()  # mathtext would raise or typeset here
        assert _shown(text.get_text()) == name


# ------------------------------------------------------------- the HTML report


@pytest.fixture(scope="module")
def report(hostile) -> str:
    return render_report(hostile)


def test_the_report_escapes_every_hostile_string(report):
    text = _inert_html(report)
    for fragment in (SCRIPT, '"onload=alert(1) x="', "&amp;lt;b&gt;", r"m$\frac$x", "$x$",
                     "a\\u202eexe.txt", "ctl\\x1b[31mred\\x07\\r\\nnext", "_hidden",
                     "zero\\u200bwidth\\u2028", "<b>$y$\\u202e",
                     "\\x1b]0;title\\x07", "http://x.test/"):
        assert fragment in text, fragment  # shown, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "&#34;onload=alert(1) x=&#34;" in report and "&amp;amp;lt;b&amp;gt;" in report


def test_the_report_plots_are_svg_with_the_names_as_text(report):
    uris = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', report)
    assert len(uris) == 5
    texts: set[str] = set()
    for uri in uris:
        svg = base64.b64decode(uri).decode("utf-8")  # no lone surrogate, valid UTF-8
        assert "<script" not in svg.lower() and not any(c in svg for c in ACTIVE)
        parser = _Markup()
        parser.feed(svg)
        assert "script" not in parser.elements and "foreignobject" not in parser.elements
        texts.update(parser.text)
    # svg.fonttype none: each label is one <text>, as it reads
    assert {r"m$\frac$x", "$x$", SCRIPT, "a\\u202eexe.txt"} <= texts


def test_the_report_s_template_escapes_and_marks_nothing_safe():
    templates = Path(ri.__file__).parent / "present" / "templates"
    for template in templates.glob("*.j2"):
        source = template.read_text()
        assert "|safe" not in source.replace(" ", "") and "autoescape false" not in source
        assert "Markup" not in source


def test_report_of_a_storage_tree_with_hostile_folder_names(tmp_path, capsys):
    """The crash of issue 25: ``reginsight report ROOT`` on such a tree."""
    root = _storage(tmp_path / "storage", FOLDERS)
    out = tmp_path / "report.html"
    assert main(["report", str(root), "--output", str(out), "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().err
    text = _inert_html(out.read_text(encoding="utf-8"))
    # each folder is named, as a repository or in the errors row that refuses it
    assert all(name in text for name in FOLDERS), text
    scan = ri.scan_storage(root, progress=False)
    assert all(printable(tag) in text for tag in scan.tags["tag"])


# ------------------------------------------------------------- the explorer


def _widgets(root: widgets.Widget) -> Iterator[widgets.Widget]:
    yield root
    for child in getattr(root, "children", ()):
        yield from _widgets(child)


def _explored(explorer: Explorer) -> list[str]:
    """Every HTML pane's value and every table's rows, after visiting each repository,
    its first tag and that tag's first layer."""
    seen = []
    browse = explorer.browse
    for repository in list(browse._repository_frame["repository"]):
        explorer.select(repository)
        if browse.tag_choices:
            explorer.select(repository, browse.tag_choices[0])
            if len(browse._layer_frame):
                explorer.select(repository, browse.tag_choices[0],
                                browse._layer_frame["digest"].iloc[0])
        seen += [w.value for w in _widgets(explorer) if isinstance(w, widgets.HTML)]
        seen += [table._dt_args["data_json"] for table in (
            browse.repositories, browse.tags, browse.layers)]
    return seen


def _no_typeset_outside_text(explorer: widgets.Widget) -> None:
    """Label, HTMLMath, descriptions and tab titles are typeset by MathJax in Jupyter:
    none may hold outside text."""
    for widget in _widgets(explorer):
        assert not isinstance(widget, widgets.Label | widgets.HTMLMath), widget
        description = getattr(widget, "description", "")
        assert "$" not in description and description.isprintable(), description
        if isinstance(widget, widgets.Tab):
            assert all("$" not in title and title.isprintable() for title in widget.titles)


def test_explorer_panes_and_tables_are_inert(hostile):
    url = f"http://x.test/{SCRIPT}\u202e"
    explorer = ri.explore(hostile, registry=SimpleNamespace(url=url))
    _no_typeset_outside_text(explorer)
    explorer.delete.click()  # "Delete ... from <url>? This cannot be undone."
    assert "x.test/&lt;script&gt;alert(1)&lt;/script&gt;\\u202e?" in explorer.result.value
    _inert_html(explorer.result.value)
    values = _explored(explorer)
    everything = "\n".join(values)
    for value in values:
        if value.startswith("[["):  # a table's rows: itables escapes <, >, &
            assert "<script" not in value.lower() and "<b>" not in value
            assert not any(char in value for char in ACTIVE)
        else:
            _inert_html(value)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in everything
    assert "&lt;b&gt;$y$\\\\u202e" in everything  # a tag, in a table (JSON)
    assert "&lt;i&gt;$z$\\u2066" in everything  # a media type, in the manifest pane
    assert "http://x.test/&lt;script&gt;" in explorer.title.value


def test_itables_escapes_even_when_a_notebook_allows_html(hostile, monkeypatch):
    import itables.options

    monkeypatch.setattr(itables.options, "allow_html", True)
    explorer = ri.explore(hostile)
    rows = explorer.browse.repositories._dt_args["data_json"]
    assert "<script" not in rows and "&lt;script&gt;" in rows


def test_explorer_of_a_storage_tree_shows_its_disk_page_inert(tmp_path):
    scan = ri.scan_storage(_storage(tmp_path / "storage", FOLDERS), progress=False)
    explorer = ri.explore(scan)
    assert scan.from_storage and explorer.disk.value
    _no_typeset_outside_text(explorer)
    values = _explored(explorer)
    for value in values:
        if not value.startswith("[["):
            _inert_html(value)
    rows = "".join(value for value in values if value.startswith("[["))
    for name in {*scan.tags["repository"].astype(str), *scan.tags["tag"]}:
        # as itables sends it: printable, &<> escaped, in JSON
        cell = printable(name).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert json.dumps(cell)[1:-1] in rows, name


def test_an_inventory_shows_itself_inertly(hostile):
    """Its repr (a terminal, a log) and its notebook HTML."""
    shown = repr(hostile)
    assert shown.isprintable() and not any(char in shown for char in ACTIVE)
    _inert_html(hostile._repr_html_())
