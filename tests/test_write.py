"""The write loop: one pass, continuation rounds when the answer is short, Ctrl-C."""

from scripted import RoundsEngine, ScriptedEngine, cut

from longwrite.generate.parser import AnswerDelta
from longwrite.generate.rounds import Continuation, write_document
from longwrite.prompt.request import build_request


class Collect:
    def __init__(self):
        self.events, self.tokens = [], 0

    def handle(self, event):
        self.events.append(event)

    def add_tokens(self, n):
        self.tokens += n

    @property
    def answer(self):
        return "".join(e.text for e in self.events if isinstance(e, AnswerDelta))


REQUEST = build_request("Write about tides", words=12, max_tokens=500)
FIRST = "<think>plan</think>\n<answer>\nOne two three four five."  # 5 words


def test_single_pass_without_continuation():
    engine = ScriptedEngine(cut(FIRST))
    sink = Collect()
    result = write_document(engine, REQUEST, sink)
    assert result.answer == "One two three four five." == sink.answer
    assert result.words == 5 and len(result.rounds) == 1
    assert result.tokens == len(cut(FIRST)) == sink.tokens


def test_short_answer_is_continued_seamlessly():
    engine = RoundsEngine([FIRST, "Six seven eight nine ten eleven twelve."], ["stop", "stop"])
    sink = Collect()
    result = write_document(engine, REQUEST, sink, continuation=Continuation(below=11))
    expected = "One two three four five.\n\nSix seven eight nine ten eleven twelve."
    assert result.answer == expected == sink.answer
    assert result.words == 12
    # the second request is the prompt plus the raw text so far, plus a paragraph break
    assert engine.prompts[1] == REQUEST.prompt + FIRST + "\n\n"
    # it asks for at least the tokens the 6 missing words need, within what is left
    second = engine.samplings[1]
    assert second.min_tokens == 9  # ceil((11 - 5) words x 1.4 tokens per word)
    assert second.max_tokens == 500 - len(cut(FIRST))
    assert [r.answer_words for r in result.rounds] == [5, 12]


def test_continuation_cut_by_length_resumes_mid_sentence():
    engine = RoundsEngine(
        [FIRST[:-1] + " six", " seven eight nine ten eleven."], ["length", "stop"]
    )
    result = write_document(
        engine, REQUEST, Collect(), continuation=Continuation(below=10, tokens_per_word=2.0)
    )
    assert engine.prompts[1] == REQUEST.prompt + FIRST[:-1] + " six"  # no separator added
    assert result.answer == "One two three four five six seven eight nine ten eleven."


def test_rounds_are_bounded():
    engine = RoundsEngine([FIRST, "a.", "b.", "c."], ["stop"] * 4)
    result = write_document(
        engine, REQUEST, Collect(), continuation=Continuation(below=1000, max_rounds=2)
    )
    assert len(engine.prompts) == 3 and len(result.rounds) == 3


def test_long_enough_answer_is_not_continued():
    engine = RoundsEngine([FIRST, "never sent"], ["stop", "stop"])
    write_document(engine, REQUEST, Collect(), continuation=Continuation(below=5))
    assert len(engine.prompts) == 1


def test_ctrl_c_ends_without_continuing():
    engine = ScriptedEngine(cut(FIRST), interrupt_after=20)
    result = write_document(engine, REQUEST, Collect(), continuation=Continuation(below=100))
    assert result.finish_reason == "cancelled"
    assert len(engine.prompts) == 1 and engine.closed_streams == 1
