"""Documents for the sources tests, made here: a PDF, a DOCX, Markdown, HTML, JSON Lines and
Chinese text, each holding a fact planted where a reader would put it (a PDF's second page,
a Word table, a Markdown section, the middle of a Chinese essay)."""

from __future__ import annotations

from pathlib import Path

PDF_FACT = "The albedo of fresh snow on the Jostedal glacier was measured at 0.87 in March."
DOCX_FACT = "Kestrel Bay | 412 nesting pairs"
MD_FACT = "Cool pavements on Ferro Street lowered surface temperature by 11 degrees."
ZH_FACT = "据测量，苏州古城区夏季夜间的热岛强度平均为二点七摄氏度。"
HTML_FACT = "The Lisbon sea breeze arrives at about three in the afternoon."
JSONL_FACT = "Green roofs in Chicago kept rooftops 17 degrees cooler."

FILLER = (
    "Cities change the weather around them in many small ways. Streets, walls and roofs store "
    "heat during the day and release it at night, while traffic and buildings add their own. "
    "Planners weigh shade, wind and water against cost, and residents notice the difference "
    "most on still summer evenings."
)


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF 1.4 with one Helvetica text line per string, page by page."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td", *[f"({esc(t)}) Tj T*" for t in lines], "ET"]
        stream = "\n".join(ops)
        objs.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        )
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for k, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{k} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Seabird survey 2023", level=1)
    document.add_paragraph(FILLER)
    document.add_heading("Counts by colony", level=2)
    document.add_paragraph("Colonies were counted from boats in June.")
    table = document.add_table(rows=2, cols=2)
    for row, (a, b) in zip(table.rows, [("Colony", "Count"), tuple(DOCX_FACT.split(" | "))],
                           strict=True):  # fmt: skip
        row.cells[0].text, row.cells[1].text = a, b
    document.save(str(path))


def make_corpus(folder: Path) -> Path:
    """The test folder: one file of each type, a picture, a broken PDF and a hidden file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "glacier.pdf").write_bytes(
        make_pdf([["Glaciers of Norway", FILLER[:90], FILLER[90:180]], [PDF_FACT, FILLER[:80]]])
    )
    make_docx(folder / "seabirds.docx")
    (folder / "streets.md").write_text(
        "---\ntitle: Streets\n---\n# Hot streets\n\n" + FILLER + "\n\n## Pavements\n\n"
        + MD_FACT + "\n\n```\n# not a heading\n```\n\n## Trees\n\nShade matters.\n",
        encoding="utf-8",
    )  # fmt: skip
    (folder / "中文").mkdir(exist_ok=True)
    (folder / "中文" / "苏州.txt").write_text(
        "城市热岛是城市比周围乡村更热的现象。\n\n" + ZH_FACT + "\n\n绿地和水面可以缓解热岛。\n",
        encoding="utf-8",
    )
    (folder / "lisbon.html").write_text(
        "<html><head><title>Lisbon</title><style>p{}</style></head><body><nav>Home</nav>"
        f"<h2>Winds</h2><p>{HTML_FACT}</p></body></html>",
        encoding="utf-8",
    )
    (folder / "notes.jsonl").write_text(
        '{"id": 1, "title": "Roofs", "text": "' + JSONL_FACT + '"}\nnot json\n', encoding="utf-8"
    )
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (folder / ".hidden.md").write_text("# secret\n\nnot indexed\n", encoding="utf-8")
    return folder
