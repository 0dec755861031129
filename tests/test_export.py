"""`longwrite export` and `-o FILE.docx`: each format made from a real-looking document and
read back with the reader its users would have (python-docx, ebooklib, an HTML parser, a PDF
text extractor); the command through `main` with a run written to the log, a file, stdin and
every fault a user can cause; the main command and `batch` exporting what they wrote.

The formats need the `export` extra (pandoc, WeasyPrint): without it those tests are skipped
with the reason, and the faults (a missing extra or engine) are simulated, so they always run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from scripted import ScriptedEngine, cut

from longwrite.cli.app import main
from longwrite.export import ExportError, export_markdown
from longwrite.export.batch import file_name
from longwrite.export.formats import export_target, format_of
from longwrite.export.metadata import CHINESE, ENGLISH, document_language, prepare
from longwrite.runlog.store import DONE, INTERRUPTED, Store

# A Chinese field report as the model writes one: a title, numbered parts, a list, a table,
# code, and a closing paragraph.
REPORT_ZH = """# 城市热岛效应调查报告

本报告汇总了2023年夏季在北京、上海和广州三座城市进行的地表与近地面气温观测，比较城区与郊区的差异，
并讨论绿地和水体对降温的作用。

## 一、观测方法

我们在每座城市选取了城区与郊区各五个站点：

- 城区站点位于商业中心、老旧住宅区和交通枢纽附近；
- 郊区站点位于农田、林地和水库边缘；
- 所有传感器离地1.5米，每十分钟记录一次气温和相对湿度。

## 二、主要结果

| 城市 | 城区平均气温 (°C) | 郊区平均气温 (°C) | 差值 |
|------|------------------|------------------|------|
| 北京 | 31.4 | 28.9 | 2.5 |
| 上海 | 32.1 | 29.6 | 2.5 |
| 广州 | 33.0 | 31.2 | 1.8 |

夜间的差值明显大于白天，北京在凌晨两点前后最高达到4.1 °C。

## 三、数据处理

原始记录用下面的脚本按区域求平均：

```python
import pandas as pd

df = pd.read_csv("stations.csv", parse_dates=["time"])
print(df.groupby(["city", "zone"])["temp"].mean().round(1))
```

## 四、结论与建议

城区比郊区平均高出约2.3 °C。增加行道树和屋顶绿化、保留城市水体，是成本最低的降温手段。
"""
SECTIONS_ZH = ["一、观测方法", "二、主要结果", "三、数据处理", "四、结论与建议"]
TITLE_ZH = "城市热岛效应调查报告"

# What a sectioned run writes: `##` sections and no title heading.
SECTIONED_EN = """## Why the Harbour Silted Up

For two centuries the harbour kept a channel of six fathoms without dredging.

## The Breakwater of 1887

The new breakwater stopped the ebb tide from scouring the entrance.

## What the Survey of 1912 Found

Soundings show the channel had lost half its depth in twenty-five years.
"""


def _have_pandoc() -> bool:
    try:
        import pypandoc

        return bool(pypandoc.get_pandoc_path())
    except (ImportError, OSError):
        return False


pandoc_needed = pytest.mark.skipif(
    not _have_pandoc(),
    reason="the export extra is not installed (pip install 'longwrite[export]')",
)


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("longwrite: error: "), err
    assert "Traceback" not in err
    return lines[0]


def log_run(raw: str, *, options: dict | None = None, status: str = DONE) -> str:
    """A finished run written straight into the log, as the recorder would leave it."""
    store = Store.open()
    try:
        run_id = store.new_run(
            kind="write", user_prompt="Write a report", prompt="PROMPT", options=options or {}
        )
        store.append(run_id, raw, 100)
        store.finish(run_id, status, finish_reason="stop", words=100)
    finally:
        store.close()
    return run_id


class Page(HTMLParser):
    """The parts of an HTML page the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: dict[str, list[str]] = {}
        self.cells: list[str] = []
        self.tags: list[str] = []
        self.references: list[str] = []
        self.lang: str | None = None
        self.part: str | None = None  # an EPUB page's role: frontmatter, bodymatter
        self.style = ""
        self._heading: str | None = None
        self._cell = False
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "html":
            self.lang = attrs.get("lang")
        if tag == "body":
            self.part = attrs.get("epub:type")
        if tag in ("h1", "h2", "h3"):
            self._heading = tag
            self.headings.setdefault(tag, []).append("")
        if tag in ("td", "th"):
            self._cell = True
            self.cells.append("")
        if tag == "style":
            self._in_style = True
        for name in ("src", "href"):
            if attrs.get(name) and not attrs[name].startswith(("#", "data:")):
                self.references.append(f"{tag} {name}={attrs[name]}")

    def handle_endtag(self, tag):
        if tag == self._heading:
            self._heading = None
        if tag in ("td", "th"):
            self._cell = False
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._heading:
            self.headings[self._heading][-1] += data
        if self._cell:
            self.cells[-1] += data
        if self._in_style:
            self.style += data


def page_of(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


# -- what a document says about itself (no pandoc needed) -------------------------------------


def test_the_lone_leading_title_becomes_metadata_and_parts_become_chapters():
    doc = prepare(REPORT_ZH, fallback_title="report")
    assert doc.title == TITLE_ZH and doc.title_from_document
    assert not doc.body.startswith("#") and doc.body.startswith("本报告汇总了")
    assert doc.shift == -1 and doc.lang == CHINESE and doc.chinese
    # a setext title, and Markdown inside the heading dropped from the title
    assert prepare("Tides\n=====\n\nThe sea.\n", fallback_title="x").title == "Tides"
    assert prepare("# The **Moon** and `tides`\n\n## One\n", fallback_title="x").title == (
        "The Moon and tides"
    )


def test_chapters_at_level_one_stay_and_the_title_falls_back():
    novel = "# Chapter 1\n\nThe ship left.\n\n# Chapter 2\n\nIt came back.\n"
    doc = prepare(novel, fallback_title="voyage")
    assert doc.title == "voyage" and not doc.title_from_document
    assert doc.body == novel and doc.shift == 0
    # a heading after an opening paragraph is no title either
    late = "Preface text.\n\n# Only heading\n\nBody.\n"
    assert prepare(late, fallback_title="f").body == late
    sectioned = prepare(SECTIONED_EN, fallback_title="harbour")
    assert sectioned.title == "harbour" and sectioned.shift == -1
    assert prepare(SECTIONED_EN, fallback_title="h", title="The Harbour").title == "The Harbour"


def test_language_is_the_majority_of_counted_units():
    assert document_language(REPORT_ZH) == CHINESE  # code inside does not make it English
    assert document_language("We visited 北京 and 上海 in the heat of July.") == ENGLISH
    assert document_language(SECTIONED_EN) == ENGLISH
    assert prepare(SECTIONED_EN, fallback_title="h", lang="de").lang == "de"


def test_formats_come_from_the_extension():
    assert format_of(Path("a/Report.DOCX")).writer == "docx"
    assert format_of(Path("r.htm")).name == "html" and format_of(Path("r.epub")).writer == "epub3"
    for bad in ("r.rtf", "report"):
        with pytest.raises(ExportError, match=r"\.docx, \.epub, \.html, \.odt, \.pdf, \.md"):
            format_of(Path(bad))


def test_the_main_commands_output_and_format():
    p = Path
    assert export_target(None, None) == (None, None)
    assert export_target(p("r.md"), None) == (p("r.md"), None)
    assert export_target(p("notes.txt"), None) == (p("notes.txt"), None)  # as it always was
    assert export_target(p("out/r.docx"), None) == (p("out/r.md"), p("out/r.docx"))
    assert export_target(p("r"), "pdf") == (p("r.md"), p("r.pdf"))
    assert export_target(p("r.md"), "epub") == (p("r.md"), p("r.epub"))
    assert export_target(p("r.html"), "html") == (p("r.md"), p("r.html"))
    assert export_target(p("r.md"), "md") == (p("r.md"), None)
    with pytest.raises(ExportError, match="disagree"):
        export_target(p("r.pdf"), "docx")
    with pytest.raises(ExportError, match="needs -o FILE"):
        export_target(None, "docx")


def test_batch_ids_become_distinct_file_names():
    assert file_name("id-1") == "id-1" and file_name("p3f9a0c2e1b7d") == "p3f9a0c2e1b7d"
    assert file_name("报告_1") == "报告_1"
    unsafe = [file_name(i) for i in ("a/b", "a b", "a_b", "../etc", ".hidden", "")]
    assert all("/" not in n and not n.startswith(".") and n for n in unsafe)
    assert len(set(unsafe)) == len(unsafe)  # "a/b" and "a b" do not share a_b's file


# -- each format, read back -------------------------------------------------------------------


@pandoc_needed
def test_docx_has_the_title_headings_table_and_chinese_language(tmp_path):
    import docx

    out = tmp_path / "report.docx"
    export_markdown(REPORT_ZH, out, author="Li Wei")
    document = docx.Document(str(out))
    styled = [(p.style.name, p.text) for p in document.paragraphs]
    assert ("Title", TITLE_ZH) in styled and ("Author", "Li Wei") in styled
    assert [text for style, text in styled if style == "Heading 1"] == SECTIONS_ZH
    assert any("城区站点位于" in text for _, text in styled)  # the list
    assert any("import pandas as pd" in text for _, text in styled)  # the code
    (table,) = document.tables
    rows = [[c.text for c in row.cells] for row in table.rows]
    assert rows[0][0] == "城市" and rows[1] == ["北京", "31.4", "28.9", "2.5"] and len(rows) == 4
    assert document.core_properties.title == TITLE_ZH
    # Word takes its Chinese (theme) font from the East Asian language
    styles = zipfile.ZipFile(out).read("word/styles.xml").decode()
    assert 'w:eastAsia="zh-CN"' in styles


@pandoc_needed
def test_epub_chapters_are_the_sections(tmp_path):
    import ebooklib
    from ebooklib import epub

    out = tmp_path / "report.epub"
    export_markdown(REPORT_ZH, out)
    book = epub.read_epub(str(out), {"ignore_ncx": True})
    assert book.get_metadata("DC", "title")[0][0] == TITLE_ZH
    assert book.get_metadata("DC", "language")[0][0] == CHINESE
    chapters = []
    for item in book.get_items_of_type(ebooklib.ITEM_DOCUMENT):
        page = Page()
        page.feed(item.content.decode("utf-8"))  # as stored (get_content() rebuilds the head)
        if page.part == "bodymatter":  # not the title page or the contents
            chapters += page.headings.get("h1", [])
        if "北京" in page.cells:
            assert "31.4" in page.cells
        if page.headings.get("h1"):
            assert "Noto Serif CJK SC" in page.style  # the CJK font stack, in every chapter
    # one chapter per section, after the opening paragraph's (pandoc heads it with the title)
    assert chapters == [TITLE_ZH, *SECTIONS_ZH]


@pandoc_needed
def test_html_is_one_file_with_headings_table_and_a_cjk_font(tmp_path):
    out = tmp_path / "report.html"
    export_markdown(REPORT_ZH, out)
    page = page_of(out)
    assert page.lang == CHINESE
    assert page.headings["h1"] == [TITLE_ZH, *SECTIONS_ZH]  # the title, then the parts
    assert "table" in page.tags and "北京" in page.cells and "33.0" in page.cells
    assert "ul" in page.tags and "pre" in page.tags
    assert page.references == []  # nothing outside the file: no stylesheet, script, image
    assert "script" not in page.tags
    assert "Noto Serif CJK SC" in page.style
    assert 'id="TOC"' not in out.read_text(encoding="utf-8")  # no contents: not asked for


@pandoc_needed
def test_odt_is_a_document_with_the_table_and_headings(tmp_path):
    out = tmp_path / "report.odt"
    export_markdown(REPORT_ZH, out)
    with zipfile.ZipFile(out) as odt:
        assert odt.read("mimetype") == b"application/vnd.oasis.opendocument.text"
        content = odt.read("content.xml").decode()
    assert "<table:table " in content and "北京" in content and "import pandas" in content
    assert all(s in content for s in SECTIONS_ZH) and content.count("<text:h ") >= 4
    assert out.stat().st_size > 5_000


def _pdf_engine_or_skip() -> Path:
    from longwrite.export.pdf import find_engine

    try:
        return find_engine()
    except ExportError as e:
        pytest.skip(f"no PDF engine here: {e}")


@pandoc_needed
@pytest.mark.slow
def test_pdf_is_typeset_with_its_chinese_text(tmp_path):
    pypdf = pytest.importorskip("pypdf", reason="no PDF reader (pypdf, in the dev extra)")
    _pdf_engine_or_skip()
    fc_list = shutil.which("fc-list")
    if fc_list and not subprocess.run([fc_list, ":lang=zh"], capture_output=True).stdout:
        pytest.skip("no font with Chinese characters (.ci/run installs fonts-wqy-microhei)")
    out = tmp_path / "report.pdf"
    export_markdown(REPORT_ZH, out, toc=True)
    assert out.read_bytes().startswith(b"%PDF-") and out.stat().st_size > 10_000
    text = "".join(page.extract_text() for page in pypdf.PdfReader(out).pages)
    squeezed = "".join(text.split())
    assert TITLE_ZH in squeezed and "北京31.428.92.5" in squeezed
    assert all(s in squeezed for s in SECTIONS_ZH) and "目录" in squeezed
    assert "df.groupby" in squeezed


def test_markdown_export_is_the_document_itself(tmp_path):
    out = tmp_path / "copy.md"
    export_markdown(REPORT_ZH, out)
    assert out.read_text(encoding="utf-8") == REPORT_ZH


# -- the command --------------------------------------------------------------------------------


@pandoc_needed
def test_export_a_sectioned_run_by_id_prefix_gets_a_table_of_contents(tmp_path, capsys):
    raw = "<think>Three parts, by date.</think> <answer>\n" + SECTIONED_EN
    outline = {"source": "plan", "parts": [], "words": 60, "thinking": "Three parts"}
    run_id = log_run(raw, options={"outline": outline})
    out = tmp_path / "harbour.html"
    code, _, err = run_main(["export", run_id[:6], "-o", str(out), "--author", "A. Surveyor"],
                            capsys)  # fmt: skip
    assert code == 0, err
    page = page_of(out)
    assert page.headings["h1"][1:] == [
        "Why the Harbour Silted Up", "The Breakwater of 1887", "What the Survey of 1912 Found"
    ]  # fmt: skip
    assert page.headings["h1"][0] == run_id  # no title heading: named after the run
    assert 'id="TOC"' in out.read_text(encoding="utf-8")  # a sectioned run: contents
    assert "A. Surveyor" in out.read_text(encoding="utf-8")
    assert "Three parts, by date" not in out.read_text(encoding="utf-8")  # no thinking
    code, _, err = run_main(["export", run_id, "-o", str(out), "--no-toc"], capsys)
    assert code == 0 and 'id="TOC"' not in out.read_text(encoding="utf-8")


def test_export_an_unfinished_run_says_so_and_keeps_its_text(tmp_path, capsys):
    run_id = log_run("<think>plan</think> <answer>\n# Tides\n\nThe sea rises", status=INTERRUPTED)
    out = tmp_path / "tides.md"
    code, _, err = run_main(["export", "last", "-o", str(out)], capsys)
    assert code == 0, err
    assert out.read_text(encoding="utf-8") == "# Tides\n\nThe sea rises"
    assert f"run {run_id} is interrupted" in err


@pandoc_needed
def test_export_a_markdown_file_and_stdin(tmp_path, capsys, monkeypatch):
    import docx

    source = tmp_path / "report.md"
    source.write_text(REPORT_ZH, encoding="utf-8")
    out = tmp_path / "report.docx"
    code, _, err = run_main(["export", str(source), "-o", str(out), "--title", "热岛"], capsys)
    assert code == 0 and f"to {out}" in err
    paragraphs = docx.Document(str(out)).paragraphs
    assert paragraphs[0].style.name == "Title" and paragraphs[0].text == "热岛"
    monkeypatch.setattr(sys, "stdin", _Stdin(SECTIONED_EN))
    code, _, err = run_main(["export", "-", "-o", str(tmp_path / "piped.html")], capsys)
    assert code == 0, err
    assert page_of(tmp_path / "piped.html").headings["h1"][1] == "Why the Harbour Silted Up"


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def isatty(self) -> bool:
        return False

    def read(self) -> str:
        return self.text


def test_export_faults_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    source = tmp_path / "report.md"
    source.write_text(REPORT_ZH, encoding="utf-8")
    cases = {
        "to .rtf": (["export", str(source), "-o", str(tmp_path / "r.rtf")], ".rtf is not"),
        "missing file": (
            ["export", str(tmp_path / "no.md"), "-o", str(tmp_path / "x.md")],
            "no such",
        ),
        "empty log": (["export", "last", "-o", str(tmp_path / "r.md")], "run log is empty"),
        "no folder": (["export", str(source), "-o", str(tmp_path / "no" / "r.md")], "folder"),
    }
    for name, (argv, said) in cases.items():
        code, out, err = run_main(argv, capsys)
        assert code == 2 and out == "" and said in one_error_line(err), name
    log_run("<answer>\n# Tides\n\nThe sea.")
    code, _, err = run_main(["export", "zz9", "-o", str(tmp_path / "r.md")], capsys)
    assert code == 2 and "no run 'zz9'" in one_error_line(err)
    # the export extra missing: the one command that installs it
    monkeypatch.setitem(sys.modules, "pypandoc", None)
    code, _, err = run_main(["export", str(source), "-o", str(tmp_path / "r.docx")], capsys)
    assert code == 2 and "pip install 'longwrite[export]'" in one_error_line(err)
    assert not (tmp_path / "r.docx").exists()


def test_a_missing_or_broken_pdf_engine_is_one_line_with_html_as_the_way_out(
    tmp_path, capsys, monkeypatch
):
    # pandoc "installed" (a stand-in module: the engine is checked before pandoc runs)
    monkeypatch.setitem(sys.modules, "pypandoc", types.ModuleType("pypandoc"))
    source = tmp_path / "report.md"
    source.write_text(REPORT_ZH, encoding="utf-8")
    out = tmp_path / "r.pdf"
    monkeypatch.setattr("longwrite.export.pdf._candidates", lambda: [])
    code, _, err = run_main(["export", str(source), "-o", str(out)], capsys)
    line = one_error_line(err)
    assert code == 2 and "WeasyPrint" in line and ".html" in line
    # there, but its Pango will not load: what WeasyPrint itself says, and what to install
    broken = tmp_path / "weasyprint"
    broken.write_text("#!/bin/sh\necho \"OSError: cannot load library 'libpango-1.0-0'\" >&2\n"
                      "exit 1\n")  # fmt: skip
    broken.chmod(0o755)
    monkeypatch.setattr("longwrite.export.pdf._candidates", lambda: [broken])
    code, _, err = run_main(["export", str(source), "-o", str(out)], capsys)
    line = one_error_line(err)
    assert code == 2 and "libpango-1.0-0" in line and ".html" in line
    # a Chinese PDF where fontconfig knows no Chinese font
    monkeypatch.setattr("longwrite.export.pdf.find_engine", lambda: broken)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fc-list").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "fc-list").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, _, err = run_main(["export", str(source), "-o", str(out)], capsys)
    assert code == 2 and "Chinese" in one_error_line(err) and not out.exists()


# -- the main command and batch ---------------------------------------------------------------


@pytest.fixture
def engines(monkeypatch):
    """Scripted engines in place of real ones: each load gets the next of the queue."""
    queue: list = []
    monkeypatch.setattr("longwrite.engines.load_engine", lambda *a, **k: queue.pop(0))
    monkeypatch.setattr("longwrite.engines.resolve_engine_name", lambda *a, **k: "scripted")
    return queue


@pandoc_needed
def test_main_command_writes_the_markdown_and_the_docx_beside_it(engines, tmp_path, capsys):
    import docx

    engines.append(ScriptedEngine(cut("<think>一份报告。</think>\n<answer>\n" + REPORT_ZH)))
    out = tmp_path / "report.docx"
    argv = ["写一份城市热岛效应调查报告", "-o", str(out), "--max-rounds", "0", "--no-guard"]
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    assert stdout == ""
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == REPORT_ZH
    document = docx.Document(str(out))
    assert [p.text for p in document.paragraphs if p.style.name == "Heading 1"] == SECTIONS_ZH
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.docx", "report.md"]
    (record,) = Store.open().runs()
    assert record.output == str(tmp_path / "report.md")  # the log points at the Markdown


def test_main_command_checks_the_export_before_a_model_loads(engines, tmp_path, capsys,
                                                              monkeypatch):  # fmt: skip
    engines.append(ScriptedEngine(cut("<answer>\n# Tides\n\nThe sea.")))
    monkeypatch.setitem(sys.modules, "pypandoc", None)
    code, _, err = run_main(["Write about tides", "-o", str(tmp_path / "t.epub")], capsys)
    assert code == 2 and "longwrite[export]" in one_error_line(err)
    code, _, err = run_main(["Write about tides", "--format", "pdf"], capsys)
    assert code == 2 and "needs -o FILE" in one_error_line(err)
    assert len(engines) == 1 and list(tmp_path.iterdir()) == []  # nothing loaded or written


def test_batch_format_exports_each_line_once(tmp_path, capsys):
    from sse_server import Script
    from test_batch_servers import EchoServer, write_input

    ids = write_input(tmp_path / "in.jsonl", 3)
    results = tmp_path / "results.jsonl"
    with EchoServer(Script(pieces=(8,))) as srv:
        argv = ["batch", str(tmp_path / "in.jsonl"), "-o", str(results), "--server", srv.url,
                "--max-rounds", "0", "--max-tokens", "200", "--format", "md"]  # fmt: skip
        code, _, err = run_main(argv, capsys)
        assert code == 0, err
        folder = tmp_path / "results-md"
        answers = {r["id"]: r["answer"] for r in map(json.loads, results.read_text().splitlines())}
        assert sorted(p.stem for p in folder.iterdir()) == sorted(ids)
        for item_id, answer in answers.items():
            assert (folder / f"{item_id}.md").read_text(encoding="utf-8") == answer
        assert "exported 3 documents" in err
        # again: nothing runs, nothing is rewritten
        code, _, err = run_main(argv, capsys)
        assert code == 0 and "exported 0 documents" in err and "3 already there" in err
        code, _, err = run_main([*argv[:-2], "--export-dir", str(tmp_path / "x")], capsys)
        assert code == 2 and "give --format too" in one_error_line(err)


def test_a_title_line_holding_a_unicode_line_separator_is_taken_whole():
    """markdown-it counts lines at \\n only; str.splitlines also breaks at U+2028, which once
    left the rest of the title line in the body."""
    from longwrite.export.metadata import prepare

    doc = prepare("# Tides\u2028of the sea\n\nText.\u2028More.\n\n## A\n\nB", fallback_title="x")
    assert doc.title == "Tides of the sea"
    assert doc.body == "Text.\u2028More.\n\n## A\n\nB"
