"""The length a prompt asks for: number forms, bounds, pieces, the ignore-list, the paper's
ranges and the LLM fallback. Every prompt here is our own, written for these tests; the
expected values are worked out by hand."""

import pytest

from longwrite.length.assess import (
    apply_range_rules,
    assessor_prompt,
    parse_range_reply,
    predict_range,
    target_range,
)
from longwrite.length.targets import (
    MAX_PREDICTED,
    WORDS_PER_PAGE,
    WordRange,
    extract_target,
    paper_range,
    parse_chinese_number,
    parse_english_number,
    parse_number,
)


def words(prompt: str) -> int | None:
    target = extract_target(prompt)
    return None if target is None else target.words


# ---- number parsers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("两千五百", 2500),
        ("一万五千", 15000),
        ("十万", 100000),
        ("八百", 800),
        ("3千", 3000),
        ("1.2万", 12000),
        ("三千", 3000),
        ("十", 10),
        ("二十五", 25),
        ("三百五十", 350),
        ("两千五", 2500),  # colloquial: five hundred
        ("一万五", 15000),  # colloquial: five thousand
        ("一千零五", 1005),  # the zero marks a skipped unit
        ("万", 10000),
        ("十五万", 150000),
    ],
)
def test_parse_chinese_number(text, value):
    assert parse_chinese_number(text) == value


@pytest.mark.parametrize("text", ["", "一一", "千字", "abc"])
def test_parse_chinese_number_rejects(text):
    with pytest.raises(ValueError):
        parse_chinese_number(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("twenty-five hundred", 2500),
        ("two thousand", 2000),
        ("five hundred", 500),
        ("a thousand", 1000),
        ("an hundred", 100),
        ("two thousand five hundred", 2500),
        ("one hundred and fifty", 150),
        ("fifteen hundred", 1500),
        ("Ten Thousand", 10000),
        ("seventy-five", 75),
    ],
)
def test_parse_english_number(text, value):
    assert parse_english_number(text) == value


def test_parse_english_number_rejects():
    with pytest.raises(ValueError):
        parse_english_number("two bananas")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10,000", 10000),
        ("10000", 10000),
        ("1.5k", 1500),
        ("2K", 2000),
        ("3 thousand", 3000),
        ("3千", 3000),
        ("1.2万", 12000),
        ("两千", 2000),
        ("five hundred", 500),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


# ---- one explicit length --------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Write a 10,000 word family saga set on a tea estate.", 10000),
        ("Please write 10000 words on the history of lighthouses", 10000),
        ("A 1.5k word blog post about sourdough starters", 1500),
        ("Draft a 2K-word grant proposal for a community garden", 2000),
        ("Give me a 3,000-word essay on tides and the moon", 3000),
        ("In 500 words, explain how vaccines are tested", 500),
        ("Write two thousand words about the night sea", 2000),
        ("Compose five hundred words on the smell of bread", 500),
        ("Write a thousand words on silence in cities", 1000),
        ("Write twenty-five hundred words on the origins of jazz", 2500),
        ("Write a two-thousand-word ghost story", 2000),
        ("Write one hundred and fifty words describing a storm", 150),
        ("Write approximately 1,200 words, in plain English, on trains", 1200),
        ("Describe the water cycle for children, 600 words.", 600),
        ("Word count: 700. Topic: why cities plant trees", 700),
        ("Write a 280-character product blurb for a kettle", 280),
        ("写一篇3千字的游记", 3000),
        ("写一部1.2万字的武侠短篇", 12000),
        ("请写一篇5000字的调研报告", 5000),
        ("写一篇300词的英语短文，介绍端午节", 300),
        ("写一篇八百字的散文，题目是《故乡的桥》", 800),
        ("写一个两千五百字的童话故事", 2500),
        ("写一篇一万五千字的科幻小说", 15000),
        ("以春天为题，写三千字", 3000),
        ("写一篇五百字左右的游记", 500),
        ("关于碳中和的科普文章（1500字）", 1500),
        ("请用300个汉字介绍你的家乡", 300),
        ("请写一篇１０００字的读后感", 1000),  # full-width digits
        ("扩写下面这段话到两千字：小明推开门，看见了海。", 2000),
        ("演讲稿，字数要求：1600左右", 1600),
        ("帮我写一份述职报告，字数2500左右", 2500),
    ],
)
def test_one_stated_length(prompt, expected):
    assert words(prompt) == expected


def test_target_fields():
    target = extract_target("Please write a 3,000-word essay on tides")
    assert target is not None
    assert (target.words, target.kind, target.source) == (3000, "exact", "3,000-word")
    assert target.range == WordRange(2700, 3300)


# ---- bounds and ranges ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "value", "kind", "lo", "hi"),
    [
        ("Write at least 500 words on bees", 500, "at_least", 500, 550),
        ("The answer should be no less than 500 words", 500, "at_least", 500, 550),
        ("A minimum of 500 words, please", 500, "at_least", 500, 550),
        ("Write more than 500 words about owls", 500, "at_least", 500, 550),
        ("Write 2000+ words on the rules of chess", 2000, "at_least", 2000, 2200),
        ("Write 500 words or more on recycling", 500, "at_least", 500, 550),
        ("Keep it to no more than 500 words", 500, "at_most", 450, 500),
        ("Write at most 500 words on bees", 500, "at_most", 450, 500),
        ("Explain it in under 500 words", 500, "at_most", 450, 500),
        ("Use less than 500 words", 500, "at_most", 450, 500),
        ("Answer within 500 words", 500, "at_most", 450, 500),
        ("Write up to 500 words on kites", 500, "at_most", 450, 500),
        ("Write 500 words or less on kites", 500, "at_most", 450, 500),
        ("Write about 500 words on kites", 500, "about", 450, 550),
        ("Roughly 1000 words, please", 1000, "about", 900, 1100),
        ("Write 800-1000 words about green tea", 1000, "between", 800, 1000),
        ("Write 800 to 1,000 words about green tea", 1000, "between", 800, 1000),
        ("Write between 800 and 1000 words about green tea", 1000, "between", 800, 1000),
        ("Write from 800 to 1000 words about green tea", 1000, "between", 800, 1000),
        ("Write a short story of 1,500–2,000 words", 2000, "between", 1500, 2000),
        ("Write 1-2k words on chess openings", 2000, "between", 1000, 2000),
        ("写一篇不少于800字的议论文", 800, "at_least", 800, 880),
        ("至少800字，写你最敬佩的人", 800, "at_least", 800, 880),
        ("介绍一下秦始皇，800字以上", 800, "at_least", 800, 880),
        ("文章字数不低于1500字", 1500, "at_least", 1500, 1650),
        ("写一段产品介绍，800字以内", 800, "at_most", 720, 800),
        ("回答不超过800字", 800, "at_most", 720, 800),
        ("不多于800字，讲讲你的暑假", 800, "at_most", 720, 800),
        ("篇幅控制在500字以内", 500, "at_most", 450, 500),
        ("最多写2000字", 2000, "at_most", 1800, 2000),
        ("至少写800字的观后感", 800, "at_least", 800, 880),
        ("写一篇散文，800字左右", 800, "about", 720, 880),
        ("写一篇散文，800字上下", 800, "about", 720, 880),
        ("写一篇约2000字的评论", 2000, "about", 1800, 2200),
        ("写一首100至200字的小诗", 200, "between", 100, 200),
        ("写一段100-200字的简介", 200, "between", 100, 200),
        ("写一段100~200字的简介", 200, "between", 100, 200),
        ("写一段100～200字的简介", 200, "between", 100, 200),  # full-width tilde
        ("生成一篇种草文案，300到400字", 400, "between", 300, 400),
        ("写3-5千字的行业分析", 5000, "between", 3000, 5000),
        # both bounds stated apart: one range, whichever comes first and wherever the unit is
        ("Write at least 800 words and at most 1200", 1200, "between", 800, 1200),
        ("No more than 1,200 and no fewer than 800 words, please", 1200, "between", 800, 1200),
        ("Write a minimum of 800 words but no more than 1200 words", 1200, "between", 800, 1200),
        ("不少于800字，不超过1200字", 1200, "between", 800, 1200),
        ("写一篇文章，至少800字，最多1200字", 1200, "between", 800, 1200),
        ("More than 500 words, but under 5000 words", 5000, "at_most", 4500, 5000),  # too far
        ("At least 2 pages and at most 3 pages", 600, "between", 400, 600),  # 200 words a page
    ],
)
def test_bounds(prompt, value, kind, lo, hi):
    target = extract_target(prompt)
    assert target is not None
    assert (target.words, target.kind, target.range) == (value, kind, WordRange(lo, hi))


# ---- several pieces -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Write 5 poems of 100 words each about autumn", 500),
        ("Write five blog posts, each about 300 words, on saving money", 1500),
        ("Write 3 articles of 500 words on local history", 1500),
        ("Write 3 essays, 500 words each", 1500),
        ("Write five 500-word essays on famous bridges", 2500),
        ("Write 4 short stories of at least 1000 words", 4000),
        ("为公众号写三篇推文，每篇不少于600字", 1800),
        ("每篇500字，共4篇，主题是校园生活", 2000),
        ("写十篇观察日记，连续十天，每天一篇，每篇两百字左右", 2000),
        ("分两部分介绍三国人物，各写1000字", 2000),
        ("写一篇作文，分三个部分，每个部分300字", 900),
        ("写三篇800字的作文", 2400),
        ("写一篇2000字的文章，共五个小节", 2000),  # no 每/各: the total is 2000
        ("写一部五幕话剧（8000字）", 8000),  # a count alone does not multiply
    ],
)
def test_several_pieces(prompt, expected):
    assert words(prompt) == expected


def test_several_pieces_source_names_both_parts():
    target = extract_target("为公众号写三篇推文，每篇不少于600字")
    assert target is not None
    assert target.source == "三篇 × 不少于600字"
    assert (target.kind, target.range) == ("at_least", WordRange(1800, 1980))


# ---- pages ----------------------------------------------------------------------------


def test_pages_use_the_documented_words_per_page():
    assert WORDS_PER_PAGE == {"en": 200, "zh": 500}
    assert words("Write a 5-page essay on the fall of Rome") == 1000
    assert words("Write a 50-page novella about a lighthouse keeper") == 10000
    assert words("The report should be 12 pages") == 2400
    assert words("写一篇5页的实习报告") == 2500
    assert words("写一篇二十页的毕业论文") == 10000


# ---- which number is the length -------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Summarise this 3,000-word article in 200 words", 200),
        ("Summarize the following 2000-word text in under 300 words", 300),
        ("Write a summary of a 3000-word report in 250 words", 250),
        ("Summarize the 3,000-word article below in 200 words", 200),
        ("Condense the article above in 150 words", 150),
        ("Here is a 4,000-word story. Retell it in about 300 words.", 300),
        ("Shorten my 2000-word essay to 500 words", 500),
        ("把这篇3000字的文章缩写为500字", 500),
        ("将以下2000字的材料改写成一篇800字的新闻稿", 800),
        ("Write a 2000-word essay; keep the introduction under 200 words", 2000),
        ("Write the 500-word essay on trees we discussed", 500),  # 'the' alone: still used
        ("Introduce at least 5 bad habits in 400 words", 400),
        ("I am 30 years old. Write a 700-word cover letter for a job paying $5,000 a month.", 700),
        ("Write a 1000 word essay on the years 1939-1945", 1000),
        ("Describe the 7 wonders of the world in 700 words", 700),
        ("2023年9月，某公司举办了年会。请写一篇1200字的新闻稿，会期2个小时左右。", 1200),
    ],
)
def test_the_output_length_wins(prompt, expected):
    assert words(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "Summarize this 3,000-word article.",  # only the input's length is stated
        "Use these 12 words in a story: cat, dog, rain",
        "写一篇关于雷锋精神的推文",
        "Write a poem about autumn leaves",
        "Write about 5 bad habits in reading",  # item count
        "Give me 3 tips and 10 reasons to learn Rust",
        "List 15 emojis with a line of dialogue for each",
        "Write about the world in 2023",  # year
        "写一篇2024年的年终总结",
        "He is 25 years old and lives in Oslo; write his biography",  # age
        "A laptop costs $500. Write an ad for it.",  # price
        "这件衣服500元，写一段推销文案",
        "Sales rose 20% this year; write a memo",  # percentage
        "The meeting is on 3/14 at 10:30; write the agenda",  # date and time
        "1. Introduction\n2. Methods\n3. Results\nExpand this outline",  # list numbering
        "介绍三个星座的性格特点",  # 三个星座: a count
        "出10道关于光合作用的选择题",
        "Write a story with 3 characters",  # people in a story, not a length
        "Write a 5-paragraph essay on recycling",  # paragraphs: no fixed size
        "Summarize the text in 3 sentences",
        "写一个发生在十字路口的故事",  # 十字: an idiom, not ten characters
        "介绍一下千字文",
        "这些顶流产品，千万别错过了！",  # 千万: "by all means"
        "Write a talk. Length: 2 hours",
        "Write a short poem in 6 words",  # below 10 words: a count, not a length
        "",
    ],
)
def test_no_length(prompt):
    assert extract_target(prompt) is None


# ---- the paper's ranges ---------------------------------------------------------------


def test_paper_range():
    assert paper_range(2000, "exact") == WordRange(1800, 2200)
    assert paper_range(2000, "about") == WordRange(1800, 2200)
    assert paper_range(2000, "at_least") == WordRange(2000, 2200)
    assert paper_range(2000, "at_most") == WordRange(1800, 2000)
    assert paper_range(1000, "between", 800, 1000) == WordRange(800, 1000)
    assert paper_range(150, "exact") == WordRange(135, 165)  # exact +/-10%, no rounding to 100
    assert paper_range(125, "exact") == WordRange(113, 138)  # 112.5 and 137.5 round half up
    assert paper_range(15, "at_least") == WordRange(15, 17)  # 16.5 -> 17


def test_paper_range_rejects_bad_input():
    with pytest.raises(ValueError):
        paper_range(100, "roughly")
    with pytest.raises(ValueError):
        paper_range(100, "between")
    with pytest.raises(ValueError):
        paper_range(100, "between", 200, 100)


# ---- LLM prediction -------------------------------------------------------------------


class FakeLLM:
    """A `complete` that returns its replies in turn and records the prompts it got."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.replies[min(len(self.prompts), len(self.replies)) - 1]


def test_assessor_prompt_substitutes_plainly():
    prompt = assessor_prompt("Write about {braces} and {question}")
    assert prompt.count("Write about {braces} and {question}") == 1
    assert "12000" in prompt and "3000" in prompt and '{"lo": ' in prompt


@pytest.mark.parametrize(
    ("reply", "pair"),
    [
        ('{"lo": 800, "hi": 1200}', (800, 1200)),
        ('This is a short op-ed.\n{"lo": 1000, "hi": 1500}\nHope that helps!', (1000, 1500)),
        ('e.g. {"lo": 1, "hi": 2}; my answer: {"lo": 600, "hi": 900}', (600, 900)),
        ("{'lo': 800, 'hi': 1,200}", (800, 1200)),
        ('{"hi": 1500, "lo": 900}', (900, 1500)),
        ('{"lo": "900", "hi": "1500"}', (900, 1500)),
        ("I would say 800-1200 words.", (800, 1200)),
        ("Range: [2000, 3000]", (2000, 3000)),
        ("no idea", None),
        ('{"lo": "many", "hi": "more"}', None),
        ('{"lo": -5, "hi": 9}', None),
    ],
)
def test_parse_range_reply(reply, pair):
    assert parse_range_reply(reply) == pair


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (800, 1200, (800, 1200)),
        (1234, 1890, (1200, 1900)),  # multiples of 100
        (1250, 1949, (1300, 1900)),  # half up
        (0, 0, (0, 0)),  # impossible request
        (1500, 1000, (1000, 1500)),  # swapped
        (11000, 15000, (11000, 12000)),  # hi <= 12,000
        (2000, 9000, (4000, 7000)),  # hi - lo <= 3,000, around the middle (5500)
        (50, 20000, (4600, 7600)),  # clamp to [100, 12000], then narrow around 6100
        (0, 8000, (2500, 5500)),
        (10000, 99999, (10000, 12000)),
    ],
)
def test_apply_range_rules(lo, hi, expected):
    got = apply_range_rules(lo, hi)
    assert (got.lo, got.hi) == expected
    assert got.lo % 100 == 0 and got.hi % 100 == 0
    assert 0 <= got.lo <= got.hi <= MAX_PREDICTED and got.hi - got.lo <= 3000


def test_predict_range_good_reply():
    llm = FakeLLM('{"lo": 800, "hi": 1200}')
    assert predict_range("Write a cover letter", llm) == WordRange(800, 1200)
    assert len(llm.prompts) == 1
    assert "Write a cover letter" in llm.prompts[0]


def test_predict_range_reads_json_among_chatter():
    llm = FakeLLM('Let me think. A wedding toast is short.\n\n{"lo": 400, "hi": 700}\n')
    assert predict_range("Write a wedding toast", llm) == WordRange(400, 700)


def test_predict_range_retries_a_malformed_reply():
    llm = FakeLLM("I cannot say.", '{"lo": 2000, "hi": 3000}')
    assert predict_range("Write a report", llm) == WordRange(2000, 3000)
    assert len(llm.prompts) == 2


def test_predict_range_gives_up_after_the_attempts():
    llm = FakeLLM("no numbers here")
    assert predict_range("Write a report", llm) is None
    assert len(llm.prompts) == 3
    assert predict_range("Write a report", FakeLLM("???"), attempts=1) is None


def test_predict_range_clamps_out_of_rule_values():
    assert predict_range("Write an epic", FakeLLM('{"lo": 9000, "hi": 30000}')) == WordRange(
        9000, 12000
    )
    assert predict_range("Write a novel", FakeLLM('{"lo": 1234, "hi": 9876}')) == WordRange(
        4100, 7100
    )  # 1200..9900, middle 5550 -> 5600


def test_target_range_prefers_the_stated_length():
    llm = FakeLLM('{"lo": 100, "hi": 200}')
    assert target_range("Write at least 2,000 words on owls", llm) == WordRange(2000, 2200)
    assert llm.prompts == []
    assert target_range("Write about owls", llm) == WordRange(100, 200)
    assert target_range("Write about owls") is None
