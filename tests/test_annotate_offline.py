"""The offline annotator: one test per rule family on texts written for these tests, the Weibo text
parser, the lexicon files, the label store, and (when ../shared/data exists) the gold_dev target."""

from __future__ import annotations

import numpy as np
import pytest

from mfmdp.annotate.base import Annotator
from mfmdp.annotate.lexicons import FAMILIES, Lexicon, load_lexicons, normalise
from mfmdp.annotate.offline import BARE_LABELS, OfflineAnnotator
from mfmdp.core.schema import DIMENSIONS, label_index
from mfmdp.annotate.weibo import parse


@pytest.fixture(scope="module")
def ann() -> OfflineAnnotator:
    return OfflineAnnotator(use_snownlp=False)


DEBUNK = {"state": "negative", "stance": "oppose", "belief": "doubt", "rumor": "counter"}


def test_is_an_annotator_and_copies_behavior(ann):
    assert isinstance(ann, Annotator)
    out = ann.annotate(["转发微博", "加油！"], "topic", behaviors=np.array([0, 1], np.int8))
    assert out.n == 2
    assert out.codes["behavior"].tolist() == [0, 1]
    unknown = ann.annotate(["加油"], "topic")
    assert unknown.codes["behavior"].tolist() == [-1]  # never guessed
    for d in DIMENSIONS:
        if d != "behavior":
            assert (out.codes[d] >= 0).all()
    assert ((out.confidence > 0) & (out.confidence <= 1)).all()


def test_behaviors_length_is_checked(ann):
    with pytest.raises(ValueError, match="behaviors"):
        ann.annotate(["a", "b"], "t", behaviors=np.array([0], np.int8))


@pytest.mark.parametrize(
    "text",
    ["转发微博", "快转微博", "轉發微博", "Repost", "", "   ", "@某某某 @另一个人", "//@路人甲:转发微博",
     "//@路人甲://@路人乙: 转发微博", "【#某地新增确诊病例3例#】", "#话题标签#", "http://t.cn/AbCdE 网页链接"],
)
def test_bare_reposts_and_copied_headlines_follow_the_convention(ann, text):
    assert ann.label_names(text) == BARE_LABELS


def test_bare_repost_confidence_is_high(ann):
    assert ann.annotate(["转发微博"], "").confidence[0] > 0.9


@pytest.mark.parametrize(
    "text",
    ["这是谣言，大家别信", "官方已经辟谣了", "假的，老视频了别再传了", "又在造谣", "//@某网友:这是假新闻，已经辟谣了"],
)
def test_debunks_are_negative_oppose_doubt_counter(ann, text):
    labels = ann.label_names(text)
    assert {k: labels[k] for k in DEBUNK} == DEBUNK


def test_bare_repost_of_a_debunk_is_a_debunk(ann):
    labels = ann.label_names("//@辟谣小助手:这是谣言！")
    assert {k: labels[k] for k in DEBUNK} == DEBUNK


@pytest.mark.parametrize("text", ["请问什么时候开学？", "在哪里可以做核酸检测？", "这是真的吗？"])
def test_sincere_questions(ann, text):
    labels = ann.label_names(text)
    assert labels["intent"] == "question"
    assert labels["state"] == "neutral"


def test_doubting_question_is_doubt(ann):
    labels = ann.label_names("真的假的？")
    assert labels["belief"] == "doubt" and labels["rumor"] == "counter"


def test_only_question_marks_are_surprise(ann):
    labels = ann.label_names("？？？")
    assert labels["sentiment"] == "surprise" and labels["intent"] == "question"


@pytest.mark.parametrize("text", ["扩散！大家注意安全 求转", "求扩散，帮转一下"])
def test_promotion(ann, text):
    assert ann.label_names(text)["intent"] == "promotion"


@pytest.mark.parametrize(
    "text,state,sentiment",
    [
        ("武汉加油！致敬一线医护", "positive", "happy"),
        ("[鼓掌][鼓掌]太好了", "positive", "happy"),
        ("希望大家都平安，早日康复🙏", "positive", "calm"),
        ("这些人太无耻了，严惩！[怒]", "negative", "angry"),
        ("唉，一路走好[泪]", "negative", "sad"),
        ("太可怕了，好害怕", "negative", "fear"),
        ("居然是这样[吃惊]", "neutral", "surprise"),
    ],
)
def test_emotions(ann, text, state, sentiment):
    labels = ann.label_names(text)
    assert (labels["state"], labels["sentiment"]) == (state, sentiment)


def test_positive_is_support_and_subjective(ann):
    labels = ann.label_names("中国加油！")
    assert labels["stance"] == "support" and labels["subjectivity"] == "subjective"
    assert labels["intent"] == "opinion"


def test_negation_cancels_praise(ann):
    assert ann.label_names("一点都不支持")["state"] != "positive"
    assert ann.label_names("支持")["state"] == "positive"


def test_sarcasm_turns_praise_negative(ann):
    assert ann.label_names("真是厉害了[微笑]")["state"] == "negative"
    assert ann.label_names("厉害了，呵呵")["state"] == "negative"


def test_own_words_outweigh_the_forwarded_chain(ann):
    # The responder's praise counts; the forwarded anger is someone else's.
    assert ann.label_names("致敬英雄！//@某人:这些人太无耻了[怒]")["state"] == "positive"
    # With no own words, the nearest forwarded words are what the repost endorses.
    assert ann.label_names("//@某人:这些人太无耻了[怒]")["state"] == "negative"


def test_news_copy_is_objective(ann):
    labels = ann.label_names("据通报，截至6月14日，北京累计确诊病例100例，新增病例8例，患者已送医院治疗")
    assert labels["subjectivity"] == "objective" and labels["state"] == "neutral"
    assert labels["intent"] == "promotion"


def test_repeated_texts_are_labelled_identically(ann):
    out = ann.annotate(["加油", "转发微博", "加油"], "")
    for d in DIMENSIONS:
        assert out.codes[d][0] == out.codes[d][2]


def test_snownlp_only_breaks_ties():
    with_snow = OfflineAnnotator(use_snownlp=True)
    # A strong cue decides alone: snownlp cannot overturn it.
    assert with_snow.label_names("武汉加油！致敬一线医护")["state"] == "positive"
    assert with_snow.label_names("转发微博") == BARE_LABELS


# --- text parsing --------------------------------------------------------------------------------
def test_parse_splits_own_words_from_the_chain():
    p = parse("说得好//@张三:转发微博//@李四: 原文在这里")
    assert p.own == "说得好"
    assert p.chain == ("转发微博", "原文在这里")
    assert p.effective == "说得好" and not p.from_chain


def test_parse_takes_nearest_nonempty_chain_segment_when_own_words_are_empty():
    p = parse("//@张三://@李四: 原文在这里", bare=frozenset({"转发微博"}))
    assert p.effective == "原文在这里" and p.from_chain


def test_parse_removes_reply_prefix_mentions_links_and_copied_headlines():
    p = parse("回复@王五:说得对 @赵六 http://t.cn/A6abc 【标题】#话题#")
    assert p.own == "说得对 【标题】#话题#"
    assert p.opinion == "说得对"


# --- lexicons --------------------------------------------------------------------------------------
def test_bundled_lexicons_load_and_are_normalised():
    lex = load_lexicons()
    assert set(lex) == set(FAMILIES)
    for name, family in lex.items():
        assert len(family) > 0, name
        for cue in family.cues:
            assert cue == normalise(cue), (name, cue)


def test_longest_cue_wins():
    lex = Lexicon("t", {"假的": 1.0, "真的假的": 2.0})
    assert [m.cue for m in lex.matches("真的假的")] == ["真的假的"]
    assert lex.score("真的假的，假的") == 3.0


def test_bad_weight_names_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=r"x\.txt:2"):
        Lexicon.parse("x", "# comment\n加油\tlots\n", str(tmp_path / "x.txt"))


def test_missing_lexicon_file_is_an_error(tmp_path):
    from mfmdp.annotate.lexicons import load_lexicon

    with pytest.raises(FileNotFoundError, match="happy"):
        load_lexicon("happy", tmp_path)


# --- gold_dev target (real data; skips when absent) -------------------------------------------------
@pytest.mark.shared_data
def test_offline_state_macro_f1_on_gold_dev(shared_data):
    from mfmdp.annotate.score import read_gold, score_annotator

    gold = read_gold(shared_data / "annotations" / "gold_dev.jsonl")
    scores, _ = score_annotator(OfflineAnnotator(), gold)
    assert scores["state"].macro_f1 >= 0.55
    assert scores["behavior"].accuracy == 1.0  # copied from the data
    # "Sensible on the other dimensions": better than always answering the majority label.
    for d in ("sentiment", "stance", "subjectivity", "intent"):
        majority = np.bincount(gold.labels.codes[d][gold.labels.codes[d] >= 0]).max() / scores[d].n
        assert scores[d].accuracy > majority, d


def test_label_index_roundtrip(ann):
    out = ann.annotate(["加油"], "")
    assert out.codes["state"][0] == label_index("state", "positive")


def test_stance_is_relative_to_the_topic(ann):
    outraged = "【奸商发国难财，无耻！】[怒]"
    neutral = "【某地发布最新通报】"
    angry = "太恶心了，严惩！"
    assert ann.topic_tone(outraged) == "outrage"
    assert ann.topic_tone(neutral) == "other"
    # Anger at an outraged post agrees with it; anger at a neutral report takes no side.
    assert ann.label_names(angry, topic=outraged)["stance"] == "support"
    assert ann.label_names(angry, topic=neutral)["stance"] == "neutral"
    assert ann.label_names("坚决反对，胡说", topic=neutral)["stance"] == "oppose"
    # annotate() applies the topic too
    out = ann.annotate([angry], outraged)
    assert out.codes["stance"][0] == label_index("stance", "support")


def test_version_changes_with_lexicons_and_thresholds(tmp_path):
    from mfmdp.annotate.lexicons import FAMILIES, load_lexicons
    from mfmdp.annotate.offline import Thresholds

    base = OfflineAnnotator(use_snownlp=False)
    assert base.version == OfflineAnnotator(use_snownlp=False).version
    assert OfflineAnnotator(use_snownlp=False, thresholds=Thresholds(polar=2.0)).version != base.version
    for name, lex in load_lexicons().items():
        body = "\n".join(f"{c}\t{w}" for c, w in lex.cues.items())
        if name == "happy":
            body += "\n新词\t1"
        (tmp_path / f"{name}.txt").write_text(body + "\n", encoding="utf-8")
    custom = OfflineAnnotator(lexicon_dir=str(tmp_path), use_snownlp=False)
    assert custom.version != base.version
    assert custom.label_names("新词")["state"] == "positive"
    assert len(FAMILIES) == len(load_lexicons(str(tmp_path)))


def test_pickles_for_worker_processes(ann):
    # Ray ships the annotator to every simulation task: the memo's lock must not travel.
    import pickle

    texts = ["谣言！别信", "加油武汉[心]", "转发微博"]
    before = ann.annotate(texts, "网传某地封城")
    clone = pickle.loads(pickle.dumps(ann))
    after = clone.annotate(texts, "网传某地封城")
    for d in before.codes:
        np.testing.assert_array_equal(before.codes[d], after.codes[d])
    np.testing.assert_allclose(before.confidence, after.confidence)
