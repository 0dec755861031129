"""`longwrite index`, `--source`, a batch line's `source`, `eval grounding` and dense
retrieval, through real processes and loopback servers.

The writer is a scripted model on loopback (`judge_servers.ChatJudge` streams whatever its
reply function says to the prompt it got): it cites the passages its prompt lists and a
number that names nothing. The embedding server knows a few concepts by their words, so a
query and a passage that share a concept but no word are near each other, as with a real
embedding model, and BM25 alone cannot find one from the other.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from judge_servers import judge as chat_judge

from longwrite.sources import library
from longwrite.sources.retrieve import Retriever
from tests.source_files import MD_FACT, make_corpus

LONGWRITE = [sys.executable, "-m", "longwrite"]


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "LONGWRITE_NO_LOG": "1"}
    return subprocess.run([*LONGWRITE, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)  # fmt: skip


def citing_model(prompt: str) -> str:
    """Cites the second passage its prompt lists, and [9] (which no passage has)."""
    listed = re.findall(r"^\[(\d+)\] ", prompt.split("<|assistant|>")[0], re.M)
    second = listed[1] if len(listed) > 1 else "1"
    return (
        f"<think>plan</think> <answer>Cool pavements lower street heat [{second}]. Seabird "
        "colonies are counted from boats [9].</answer>"
    )


# -- index ----------------------------------------------------------------------------------


def test_index_list_refresh_and_remove(tmp_path: Path):
    corpus = make_corpus(tmp_path / "papers")
    first = run("index", str(corpus))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("papers: 6 file(s) read, 0 unchanged, 2 skipped, 0 removed;")
    assert "  skipped: not a supported type (.png): papers/photo.png" in lines
    assert lines[-1] == "write from it: longwrite PROMPT --source papers"
    (corpus / "streets.md").write_text("# Streets\n\nCobbles hold heat.\n", encoding="utf-8")
    again = run("index", str(corpus), "--json")
    summary = json.loads(again.stdout)
    assert (summary["name"], summary["read"], summary["unchanged"]) == ("papers", 1, 5)
    listed = run("index", "--list")
    assert re.search(r"^papers\s+6\s+\d+\s", listed.stdout, re.M), listed.stdout
    assert str(corpus.resolve()) in listed.stdout
    assert run("index", "--rm", "papers").returncode == 0
    assert run("index", "--list").stderr.startswith("longwrite: no indexes yet")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give folders or files to index, or --list, or --rm NAME"),
        (("nowhere",), "nowhere: no such file or folder"),
        (("--rm", "ghost"), "no index named 'ghost'"),
        (("--list", "--rm", "x"), "give folders or files to index, or --list, or --rm NAME"),
    ],
)
def test_index_mistakes_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str):
    proc = run("index", *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"longwrite: error: {message}")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_a_folder_with_nothing_readable_is_refused_and_not_kept(tmp_path: Path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(b"\x89PNG")
    proc = run("index", str(tmp_path / "pics"))
    assert proc.returncode == 2 and "nothing in" in proc.stderr and "(.png)" in proc.stderr
    assert library.list_indexes() == []


# -- write ----------------------------------------------------------------------------------


def test_write_from_a_folder_cites_and_lists_references(tmp_path: Path):
    corpus = make_corpus(tmp_path / "papers")
    out = tmp_path / "report.md"
    with chat_judge(citing_model) as model:
        prompt = "Write about cool pavements and seabird colonies"
        proc = run(prompt, "--source", str(corpus), "--server", model.url, "--json",
                   "-o", str(out), "--max-rounds", "0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert "removed 1 citation(s) of passages that do not exist" in proc.stderr
    assert "indexing" in proc.stderr  # indexed on the fly, said once
    body, refs = data["answer"].split("\n\n## References\n\n")
    assert body == "Cool pavements lower street heat [2]. Seabird colonies are counted from boats."
    (entry,) = refs.strip().split("\n\n")
    given = {p["n"]: p for p in data["sources"]["passages"]}
    assert entry.startswith(f'[2] {given[2]["file"]}, {given[2]["locator"]}: "')
    assert out.read_text(encoding="utf-8") == data["answer"]  # -o holds what --json says
    (section,) = data["sources"]["sections"]
    assert section["cited"] == [2] and 2 in section["given"]


def test_dry_run_shows_the_passages_and_an_unknown_source_is_one_line(tmp_path: Path):
    corpus = make_corpus(tmp_path / "papers")
    proc = run("Write about cool pavements", "--source", str(corpus), "--dry-run", "--json")
    info = json.loads(proc.stdout)
    assert MD_FACT in info["prompt"] and info["sources"]["given"]
    bad = run("Write about it", "--source", "no-such-index", "--dry-run")
    assert bad.returncode == 2
    assert bad.stderr.startswith("longwrite: error: --source no-such-index: no such file")


def test_a_batch_line_writes_from_its_source(tmp_path: Path):
    corpus = make_corpus(tmp_path / "papers")
    lines = [
        {"id": "a", "prompt": "Write about cool pavements and seabird colonies",
         "source": str(corpus)},
        {"id": "b", "prompt": "Write about tides"},
        {"id": "c", "prompt": "Write", "source": 5},
    ]  # fmt: skip
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with chat_judge(citing_model) as model:
        proc = run("batch", str(src), "-o", str(out), "--server", model.url, "--max-rounds", "0",
                   "--stream")  # (the scripted model streams)  # fmt: skip
    assert "in.jsonl:3: `source` must be" in proc.stderr  # skipped, named
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == {"a", "b"}
    assert records["a"]["sources"]["removed"] == 1 and "## References" in records["a"]["answer"]
    assert "sources" not in records["b"]


# -- eval grounding -------------------------------------------------------------------------


def _results(tmp_path: Path) -> Path:
    prose = "Streets hold the heat of the day and give it back at night, " * 3
    ours = {
        "id": "ours",
        "answer": f"# Heat\n\n{prose}as measured [1].\n\n{prose}and more [1][2].\n\n{prose}\n\n"
        'Short line [1].\n\n## References\n\n[1] a.md, A: "x"\n\n[2] b.md, B: "y"\n',
        "sources": {
            "removed": 2,
            "passages": [
                {"n": 1, "cited": True, "text": "Streets release stored heat at night."},
                {"n": 2, "cited": True, "text": "Penguins live in Antarctica."},
            ],
        },
    }
    foreign = {"id": "foreign", "answer": f"{prose}as shown [3] and [4].\n\nReferences\n\n[3] x"}
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in (ours, foreign)), encoding="utf-8")
    return path


def test_grounding_doctests() -> None:
    import doctest

    import longwrite.evaluate.grounding

    result = doctest.testmod(longwrite.evaluate.grounding)
    assert result.attempted > 0 and result.failed == 0


def test_eval_grounding_counts_paragraphs_and_citations(tmp_path: Path):
    proc = run("eval", "grounding", str(_results(tmp_path)), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    ours, foreign = summary["documents"]
    # three prose paragraphs (the short line and the headings are not), two of them cite
    assert (ours["paragraphs"], ours["cited_paragraphs"], ours["citations"]) == (3, 2, 3)
    assert (ours["dangling"], ours["removed"]) == (0, 2)
    # another tool's document: no sources, and its References is no heading of ours, so
    # both numbers point at nothing
    assert (foreign["paragraphs"], foreign["citations"], foreign["dangling"]) == (1, 2, 2)
    assert summary["share"] == pytest.approx((2 / 3 + 1) / 2)
    assert summary["judged"] == 0 and summary["support"] is None


def test_eval_grounding_asks_the_judge_about_each_pair(tmp_path: Path):
    def verdict(prompt: str) -> str:
        supported = "yes" if "release stored heat" in prompt else "no"
        return json.dumps({"supported": supported, "reason": "r"})

    with chat_judge(verdict) as judge:
        proc = run("eval", "grounding", str(_results(tmp_path)), "--judge", judge.url, "--json")
        asked = [p for _, p in judge.asked]
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)["documents"][0]
    # pairs: (sentence 1, [1]), (sentence 2, [1]), (sentence 2, [2]): yes, yes, no
    assert ours["judged"] == 3 and ours["support"] == pytest.approx(2 / 3)
    assert len(asked) == 3 and all("Sentence:" in p and "Passage:" in p for p in asked)


# -- dense retrieval ------------------------------------------------------------------------

CONCEPTS = {
    "heat": ("urban warming", "hotter than the fields", "heat island"),
    "birds": ("seabird", "nesting", "gull"),
    "water": ("rain", "flood", "river"),
}


class _Embeddings(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "concepts", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.server.calls.append(len(texts))  # type: ignore[attr-defined]
        data = []
        for i, text in enumerate(texts):
            vector = [float(any(w in text.lower() for w in words)) for words in CONCEPTS.values()]
            data.append({"object": "embedding", "index": i, "embedding": [*vector, 0.01]})
        self._send({"object": "list", "data": data, "model": "concepts",
                    "usage": {"prompt_tokens": 1, "total_tokens": 1}})  # fmt: skip


@pytest.fixture
def embed_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    server.calls = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.calls  # type: ignore[attr-defined]
    server.shutdown()


def test_dense_retrieval_finds_a_passage_that_shares_no_word(tmp_path: Path, embed_url):
    url, calls = embed_url
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "city.md").write_text(
        "# Night\n\nDowntown districts stay hotter than the fields around them.\n", "utf-8"
    )
    (folder / "birds.md").write_text("# Cliffs\n\nGull nesting on cliffs in May.\n", "utf-8")
    name, _ = library.open_source(str(folder))
    query = "urban warming"
    bm25 = Retriever([name])
    assert bm25.search(query) == []  # no word in common
    bm25.close()
    dense = Retriever([name], url)
    hits = dense.search(query)
    assert hits[0].passage.file == "notes/city.md"
    assert calls[0] == 2  # both passages embedded once, in one request
    dense.close()
    again = Retriever([name], url)  # vectors are kept in the index: only the query is sent
    again.search(query)
    assert calls[1:] == [1, 1]
    again.close()
    (folder / "rain.md").write_text("# Storms\n\nThe river flooded twice.\n", "utf-8")
    ahead = run("index", str(folder), "--embed-server", url, "--json")  # embedded now
    assert json.loads(ahead.stdout)["embedded"] == 1 and calls[3:] == [1]


def test_help_loads_nothing_of_sources(tmp_path: Path):
    code = (
        "import sys\nfrom longwrite.cli.app import main\n"
        "for argv in (['--help'], ['index', '--help'], ['eval', 'grounding', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "mods = ('sqlite3', 'pypdf', 'docx', 'numpy', 'longwrite.sources.store')\n"
        "print('LOADED=' + ','.join(m for m in mods if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "LOADED="
