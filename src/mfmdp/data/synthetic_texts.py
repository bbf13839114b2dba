"""Chinese text templates of the synthetic events: topics, label-dependent fragments, noise.

A response's wording is built from its labels (state x stance picks the core sentence; sentiment
adds a cue or a Weibo emoji code; intent adds a question or a call to spread; objective responses
read like news copy), so that an annotator can recover the labels from the text. Noise: @mentions,
stray emoji, sarcasm (praise words + [微笑] on a negative, angry response), and "//@name:..." repost
chains quoting the parent. Cue words agree with the offline annotator's lexicons (data/lexicons).
"""

from __future__ import annotations

import numpy as np

from mfmdp.core.schema import DIMENSIONS
from mfmdp.core.records import BARE_REPOST_TEXT

PLACES = ("江城", "临海", "云州", "青川", "南屏", "北塘", "西港", "东阳", "安平", "清河", "长宁", "白沙")
PROVINCES = ("北京", "上海", "广东 广州", "湖北 武汉", "浙江 杭州", "四川 成都", "江苏 南京", "山东 济南",
             "河南 郑州", "陕西 西安", "湖南 长沙", "福建 厦门", "海外", "其他")
MEDIA = ("人民日报", "新京报", "澎湃新闻", "央视新闻", "中国新闻网", "头条新闻", "环球时报")

# Topic families. Each topic: source post, the claim in a few words, an objective restatement, the
# main actor, and family-specific sentences by (state, stance). {place} is filled per event.
TOPICS: dict[str, list[dict[str, object]]] = {
    # A hopeful claim that turns out false: positive crowd, then debunked (negative, oppose).
    "rumor": [
        {"headline": "{place}明天起全市免费发放口罩", "claim": "明天起全市免费发放口罩",
         "fact": "网传{place}明天起在各社区免费发放口罩", "actor": "{place}市政府",
         "official": "{place}发布", "official_type": 1,
         "source": "【好消息】{place}明天起全市免费发放口罩，每人五个，带身份证去社区领！扩散！",
         "pos_support": ["太好了！终于可以领口罩了", "{place}政府真给力，点赞", "好消息，感谢{actor}[赞]"],
         "neg_oppose": ["假的，{place}发布已经辟谣了", "又是谣言，白跑一趟社区", "造谣的人太可恶，害大家排队"],
         "signal": "【情况说明】近日网传“{place}明天起全市免费发放口罩”，经核实，该消息不实。"
                   "请广大市民以官方发布为准，不信谣、不传谣。"},
        {"headline": "{place}中医院研制出预防新冠的药茶", "claim": "喝药茶能预防新冠",
         "fact": "网传{place}中医院研制出可预防新冠的药茶", "actor": "{place}中医院",
         "official": "{place}市卫健委", "official_type": 1,
         "source": "{place}中医院研制出预防新冠的药茶，已经有很多人喝了，效果很好，大家快去买！",
         "pos_support": ["太好了，希望是真的，大家都平安", "支持中医，{actor}厉害", "好消息！终于有办法了[鼓掌]"],
         "neg_oppose": ["假的，卫健委已经辟谣了", "又是谣言，别再传了，智商税", "造谣卖药的骗子必须严惩"],
         "signal": "【辟谣】网传“{place}中医院研制出预防新冠药茶”系虚假信息，目前没有任何药物可以预防新冠。"
                   "请勿轻信、转发。"},
        {"headline": "{place}某企业给全体员工发十万元奖金", "claim": "企业给员工发十万奖金",
         "fact": "网传{place}一企业给每位员工发放十万元奖金", "actor": "这家企业",
         "official": "{place}市场监管", "official_type": 1,
         "source": "羡慕了！{place}某企业年终给全体员工每人发十万元奖金，老板说大家辛苦了！",
         "pos_support": ["良心老板！太暖心了", "羡慕，这才是好企业，点赞", "恭喜员工们，老板好样的[哈哈]"],
         "neg_oppose": ["假的，又是营销炒作", "标题党，原来是假消息", "编的吧，骗流量的谣言"],
         "signal": "【澄清】网传“{place}某企业给全体员工发十万元奖金”系该企业为营销编造的不实信息，"
                   "已责令其删除并公开道歉。"},
        {"headline": "{place}地铁三号线下月通车", "claim": "地铁三号线下月通车",
         "fact": "网传{place}地铁三号线将于下月正式通车", "actor": "{place}地铁",
         "official": "{place}地铁", "official_type": 2,
         "source": "期待！{place}地铁三号线下个月就要通车了，以后上班再也不用挤公交啦！",
         "pos_support": ["太好了，终于等到了！", "期待，上班方便多了[鼓掌]", "好消息，{actor}给力"],
         "neg_oppose": ["假的，官方说还在施工", "又是谣言，空欢喜一场", "别信，地铁公司已经澄清了"],
         "signal": "【澄清】网传“{place}地铁三号线下月通车”不实，目前该线路仍在建设中，"
                   "开通时间以官方发布为准。"},
        {"headline": "{place}学生患病获百万捐款", "claim": "患病学生获百万捐款",
         "fact": "网传{place}一名患病大学生获得社会捐款一百万元", "actor": "好心人",
         "official": "{place}红十字会", "official_type": 7,
         "source": "感动！{place}患白血病的大学生获好心人捐款一百万，网友纷纷点赞：好人一生平安！",
         "pos_support": ["好人一生平安，太感动了", "希望早日康复，加油！", "感谢好心人，暖心[心]"],
         "neg_oppose": ["假的，红十字会说根本没有这笔捐款", "又是编的故事，骗流量", "虚假信息，别再传了"],
         "signal": "【情况说明】经核实，网传“{place}患病学生获百万捐款”系不实信息，本会未接收该笔捐款。"},
    ],
    # An accusation that turns out false: angry crowd, then clarified (positive, oppose the claim).
    "accusation": [
        {"headline": "{place}医生拒绝救治老人", "claim": "医生拒绝救治老人",
         "fact": "网传{place}一医院医生拒绝救治一名倒地老人", "actor": "这名医生",
         "official": "{place}公安", "official_type": 1,
         "source": "气愤！{place}某医院医生眼看老人倒地却拒绝救治，视频都拍下来了！",
         "neg_support": ["医生怎么能这样，必须严惩", "太冷血了，没良心", "这种人不配当医生，追责！"],
         "pos_oppose": ["错怪医生了，向这名医生致敬", "原来是剪辑的，医生辛苦了", "真相大白，医生好样的"],
         "signal": "【警情通报】经调查，网传视频系断章取义的剪辑，事发时该医生已对老人进行急救并陪同送医。"
                   "老人现已脱离危险。"},
        {"headline": "{place}外卖小哥偷拿顾客财物", "claim": "外卖小哥偷拿财物",
         "fact": "网传{place}一名外卖员送餐时偷拿顾客财物", "actor": "外卖小哥",
         "official": "平安{place}", "official_type": 1,
         "source": "{place}有外卖员送餐时偷拿顾客放在门口的东西，监控都拍到了，大家小心！",
         "neg_support": ["太可恶了，必须严查", "这种人就该封号，恶心", "以后不敢点外卖了，好可怕"],
         "pos_oppose": ["错怪小哥了，小哥好样的", "原来是顾客让他帮忙拿的，心疼小哥", "真相大白，给小哥点赞"],
         "signal": "【情况通报】经核查，视频中外卖员系受顾客委托代取物品，不存在偷拿行为。"
                   "请网民不信谣、不传谣。"},
        {"headline": "{place}学校体罚学生", "claim": "学校体罚学生",
         "fact": "网传{place}一所小学老师体罚学生", "actor": "这位老师",
         "official": "{place}教育局", "official_type": 1,
         "source": "{place}某小学老师体罚学生，孩子回家身上都是伤，家长要求学校给说法！",
         "neg_support": ["太过分了，这种老师必须开除", "心疼孩子，必须严惩", "学校必须给个说法，追责"],
         "pos_oppose": ["错怪老师了，老师辛苦了", "原来伤是摔的，老师好样的，支持老师", "真相大白，向老师致敬"],
         "signal": "【情况说明】经调查，学生伤情系课间玩耍摔伤所致，该教师及时送医处置，不存在体罚行为。"},
        {"headline": "{place}环卫工被指偷懒睡觉", "claim": "环卫工上班偷懒睡觉",
         "fact": "网传{place}一名环卫工上班时间在路边睡觉", "actor": "环卫大叔",
         "official": "{place}城管", "official_type": 1,
         "source": "拿着工资在路边睡大觉？{place}一环卫工上班时间偷懒被拍，网友怒了！",
         "neg_support": ["拿工资不干活，必须处理", "太过分了，开除！", "这种人太可恶了，恶心"],
         "pos_oppose": ["错怪大叔了，凌晨三点就上班了，辛苦了", "心疼环卫大叔，向他致敬", "原来是累倒了，希望大叔保重"],
         "signal": "【情况说明】经核实，该环卫工凌晨3时起连续作业，视频拍摄时为规定休息时间，不存在偷懒行为。"},
    ],
    # Good news the crowd keeps supporting.
    "good_news": [
        {"headline": "{place}消防员火场救出三名儿童", "claim": "消防员救出三名儿童",
         "fact": "{place}消防员在火灾中救出三名被困儿童", "actor": "消防员",
         "official": "{place}消防", "official_type": 1,
         "source": "【致敬】{place}一居民楼起火，消防员冲进火场救出三名被困儿童，自己手臂被烧伤。",
         "pos_support": ["致敬英雄！消防员辛苦了", "好样的，向消防员学习", "英雄！希望早日康复"],
         "neg_support": ["心疼消防员，手都烧伤了", "太危险了，好怕", "唉，希望孩子们没事"],
         "signal": "【通报】火灾已扑灭，三名儿童均无生命危险，受伤消防员正在医院治疗。"},
        {"headline": "{place}医疗队出征援鄂", "claim": "医疗队出征",
         "fact": "{place}医疗队今日出征驰援武汉", "actor": "医疗队",
         "official": "{place}市卫健委", "official_type": 1,
         "source": "【出征】{place}第三批医疗队今日出征驰援武汉，等你们平安回来！",
         "pos_support": ["等你们平安回来！", "致敬白衣天使，加油", "众志成城，一定会好起来"],
         "neg_support": ["心疼医护人员[泪]", "太辛苦了，好担心他们", "唉，一定要保护好自己"],
         "signal": "【通报】{place}医疗队已安全抵达，防护物资充足。"},
        {"headline": "{place}外卖小哥跳河救人", "claim": "外卖小哥跳河救人",
         "fact": "{place}一名外卖员跳入河中救起落水女子", "actor": "外卖小哥",
         "official": "平安{place}", "official_type": 1,
         "source": "【点赞】{place}一女子不慎落水，路过的外卖小哥放下餐盒跳河救人，围观群众齐鼓掌。",
         "pos_support": ["好样的，平凡英雄！", "给外卖小哥点赞[赞]", "好人一生平安，致敬"],
         "neg_support": ["太危险了，好担心", "希望小哥没受伤，心疼[泪]", "唉，落水的人没事吧"],
         "signal": "【通报】落水女子已无大碍，{place}拟为该外卖员申报见义勇为奖励。"},
        {"headline": "{place}山区学校建起新操场", "claim": "山区学校建起新操场",
         "fact": "{place}山区小学在爱心人士资助下建成塑胶操场", "actor": "爱心人士",
         "official": "{place}教育局", "official_type": 1,
         "source": "【暖心】{place}山区小学的孩子们终于有了自己的塑胶操场，孩子们开心地跑了一整天！",
         "pos_support": ["太暖心了，孩子们开心就好", "感谢爱心人士，点赞", "真好，希望孩子们健康成长"],
         "neg_support": ["看哭了，孩子们太不容易了[泪]", "心疼山区的孩子", "唉，还有好多学校没有操场"],
         "signal": "【通报】{place}将继续推进山区学校体育设施建设。"},
    ],
    # A controversy coverage slowly turns against.
    "controversy": [
        {"headline": "{place}景区门票涨价", "claim": "景区门票涨价合理",
         "fact": "{place}景区宣布门票由80元上调至150元", "actor": "景区",
         "official": "{place}文旅", "official_type": 1,
         "source": "{place}景区宣布门票上调至150元，称是为了提升服务质量。",
         "pos_support": ["支持，服务好了涨价也应该", "可以理解，希望服务越来越好", "还不错，值得一去"],
         "neg_support": ["坑人，抢钱啊", "离谱，再也不去了", "凭什么涨这么多，抵制！"],
         "signal": "【说明】景区门票调整已履行听证程序。"},
        {"headline": "{place}共享单车押金退还难", "claim": "押金很快能退",
         "fact": "{place}多名用户反映共享单车押金迟迟未退", "actor": "单车公司",
         "official": "{place}市场监管", "official_type": 1,
         "source": "{place}某共享单车公司回应：押金正在有序退还，请用户耐心等待。",
         "pos_support": ["相信公司，慢慢等吧", "希望早点退，支持", "已经退了，还不错"],
         "neg_support": ["骗子公司，半年了还没退", "黑心，押金去哪了", "气死了，追责！"],
         "signal": "【提醒】消费者可向12315反映押金问题。"},
        {"headline": "{place}网红餐厅限时排队", "claim": "网红餐厅值得排队",
         "fact": "{place}一家网红餐厅每天排队超过三小时", "actor": "网红餐厅",
         "official": "{place}市场监管", "official_type": 1,
         "source": "{place}这家网红餐厅每天排队三小时起，老板说食材新鲜、味道一流，你会去吗？",
         "pos_support": ["去过，味道确实不错", "值得一试，支持", "好吃！排队也值得[哈哈]"],
         "neg_support": ["雇人排队吧，割韭菜", "难吃还贵，坑人", "营销套路，恶心"],
         "signal": "【提醒】消费者用餐遇到问题可拨打12315投诉。"},
    ],
}

# Generic sentences by (state, stance) when a topic has none of its own.
GENERIC = {
    (1, "support"): ["说得好，支持！", "希望是真的", "好消息！点赞"],
    (1, "oppose"): ["还好查清楚了，放心了", "相信{official}，感谢及时澄清", "真相大白了，支持{official}"],
    (1, "neutral"): ["希望一切都好起来", "平安就好，相信会查清楚的", "支持依法处理，一起加油"],
    (-1, "support"): ["这也太离谱了，必须严查", "太过分了，必须给个说法", "看得心里难受"],
    (-1, "oppose"): ["又是谣言，造谣的人必须严惩", "假的，别再传了", "“{claim}”是假消息，不要信"],
    (-1, "neutral"): ["唉，这都什么事", "无语了，到底怎么回事", "太让人失望了"],
    (0, "support"): ["{fact}，持续关注", "蹲一个后续", "关注一下{actor}"],
    (0, "oppose"): ["存疑，等{official}的消息吧", "感觉不太可能，等通报", "不太信，等官方消息"],
    (0, "neutral"): ["等官方通报吧", "围观一下", "路过看看"],
}
# News copy; "counter" only for authors who have seen the signal, "doubt" for those who have not.
OBJECTIVE = {
    "spread": ["【{headline}】{fact}", "据{media}报道，{fact}", "{fact}。{media}记者正在跟进"],
    "counter": ["最新：{official}就“{claim}”一事发布情况说明", "{official}发布通报回应“{claim}”一事"],
    "doubt": ["{fact}，目前尚未得到官方证实", "{fact}，消息有待核实"],
}
SENTIMENT_CUES = {
    "angry": ["[怒]", "，气死了[怒]", "[抓狂]", "，离谱！"],
    "calm": ["", "", "[作揖]"],
    "happy": ["[哈哈]", "[鼓掌]", "[赞]", "，太开心了"],
    "sad": ["[泪]", "，心疼[泪]", "[悲伤]", "，唉[泪]"],
    "fear": ["，好可怕", "[害怕]", "，细思极恐", "，好担心"],
    "surprise": ["[吃惊]", "，没想到啊", "，天哪[吃惊]", "，居然这样"],
}
QUESTIONS_DOUBT = ["真的假的？", "有证据吗？", "靠谱吗？", "是真的吗？"]
QUESTIONS = ["请问后续怎么样了？", "有没有人知道后续？", "什么时候有结果？"]
PROMOTION = ["扩散！", "转发周知：", "大家注意，", "求扩散 "]
SARCASM = ["呵呵，{official}真行[微笑]", "真是厉害了，{actor}[微笑]", "好棒棒哦[doge]", "懂的都懂，细品[微笑]"]
STRAY_EMOJI = ["[围观]", "[酷]", "[兔子]", "[话筒]"]

NICK_HEADS = ("小", "阿", "大", "老", "萌萌", "快乐", "安静的", "追风", "会飞的", "爱吃", "不吃", "今天也要")
NICK_TAILS = ("鱼", "猫", "土豆", "星星", "木子", "橙子", "包子", "少年", "姑娘", "香菜", "西瓜", "熊", "奶茶")
DESCRIPTIONS = ("热爱生活", "做一个温暖的人", "吃货一枚", "摄影爱好者", "学生党", "新闻工作者",
                "不定期更新", "随缘", "我的地盘我做主", "努力努力再努力")
VERIFIED_REASONS = ("知名财经博主", "微博签约自媒体", "知名美食博主", "资深媒体人", "律师", "医生")
INSTITUTION_SUFFIXES = ((1, "{place}发布"), (1, "平安{place}"), (3, "{place}日报"), (3, "{media}"),
                        (4, "{place}大学"), (5, "{place}在线"), (7, "{place}红十字会"), (2, "{place}银行"))


def fill(template: str, topic: dict, place: str, media: str = "新京报") -> str:
    """Fill {place}/{media} first, then topic fields (which may themselves contain {place})."""
    ctx = {k: (v.format(place=place, media=media) if isinstance(v, str) else v) for k, v in topic.items()}
    ctx.update(place=place, media=media)
    return template.format(**ctx)


def _join(core: str, cue: str) -> str:
    """core + cue without doubled punctuation ("加油！" + "，太开心了" -> "加油！太开心了")."""
    if cue.startswith("，") and core.endswith(("！", "？", "。", "，")):
        cue = cue[1:]
    return core + cue


def nicknames(rng: np.random.Generator, n: int) -> list[str]:
    heads = rng.integers(0, len(NICK_HEADS), n).tolist()
    tails = rng.integers(0, len(NICK_TAILS), n).tolist()
    nums = rng.integers(0, 10000, n).tolist()
    digits = (rng.random(n) < 0.6).tolist()
    return [NICK_HEADS[h] + NICK_TAILS[t] + (str(x) if d else "") for h, t, x, d in zip(heads, tails, nums, digits)]


class TextRenderer:
    """Renders response texts for one event's topic from label codes."""

    def __init__(self, topic: dict, place: str, media: str):
        self.ctx = {k: (fill(v, topic, place, media) if isinstance(v, str) else v) for k, v in topic.items()}
        self.ctx.update(place=place, media=media)
        self.core = {}
        for (state, stance), generic in GENERIC.items():
            key = {1: "pos", 0: "neu", -1: "neg"}[state] + "_" + stance
            own = [fill(t, topic, place, media) for t in topic.get(key, [])]  # type: ignore[union-attr]
            self.core[(state, stance)] = own + [t.format(**self.ctx) for t in generic]
        self.objective = {k: [t.format(**self.ctx) for t in v] for k, v in OBJECTIVE.items()}
        self.sarcasm = [t.format(**self.ctx) for t in SARCASM]

    def render(
        self,
        rng: np.random.Generator,
        codes: dict[str, np.ndarray],
        bare: np.ndarray,
        exposed: np.ndarray,
        parent: np.ndarray,
        author_names: list[str],
        mention_pool: list[str],
        *,
        p_mention: float,
        p_emoji: float,
        p_sarcasm: float,
        p_chain: float,
        fixed_texts: dict[int, str] | None = None,
    ) -> list[str]:
        """One text per response (in time order, so a repost chain can quote its parent's text)."""
        n = len(bare)
        names = {d: DIMENSIONS[d] for d in DIMENSIONS}
        state = (1 - codes["state"].astype(int)).tolist()  # code -> +1/0/-1
        stance = [names["stance"][c] for c in codes["stance"].tolist()]
        sentiment = [names["sentiment"][c] for c in codes["sentiment"].tolist()]
        objective = (codes["subjectivity"] == 1).tolist()
        doubt = (codes["belief"] == 1).tolist()
        intent = [names["intent"][c] for c in codes["intent"].tolist()]
        share = (codes["behavior"] == 0).tolist()
        u = rng.random((n, 5)).tolist()
        pick = rng.integers(0, 1 << 30, (n, 5)).tolist()
        bare_l = bare.tolist()
        exposed_l = exposed.tolist()
        par = parent.tolist()
        fixed = fixed_texts or {}
        out: list[str] = []
        for i in range(n):
            if i in fixed:
                out.append(fixed[i])
                continue
            if bare_l[i]:
                out.append(BARE_REPOST_TEXT)
                continue
            ui, pk = u[i], pick[i]
            cues = SENTIMENT_CUES[sentiment[i]]
            if objective[i]:
                kind = ("counter" if exposed_l[i] else "doubt") if doubt[i] else "spread"
                opts = self.objective[kind]
                text = _join(opts[pk[0] % len(opts)], cues[pk[1] % len(cues)])
            elif state[i] == -1 and sentiment[i] == "angry" and ui[0] < p_sarcasm:
                text = self.sarcasm[pk[0] % len(self.sarcasm)]  # no cue: the irony is the only hint
            else:
                opts = self.core[(state[i], stance[i])]
                text = _join(opts[pk[0] % len(opts)], cues[pk[1] % len(cues)])
            if intent[i] == "question":
                qs = QUESTIONS_DOUBT if doubt[i] else QUESTIONS
                q = qs[pk[2] % len(qs)]
                text = (q + text) if ui[1] < 0.5 else (text + "，" + q)
            elif intent[i] == "promotion" and (not objective[i] or ui[1] < 0.5):  # news copy promotes itself
                text = PROMOTION[pk[2] % len(PROMOTION)] + text
            if ui[2] < p_emoji:
                text += STRAY_EMOJI[pk[3] % len(STRAY_EMOJI)]
            if ui[3] < p_mention and mention_pool:
                text = text + " @" + mention_pool[pk[4] % len(mention_pool)]
            p = par[i]
            if share[i] and p >= 0 and ui[4] < p_chain and out[p] != BARE_REPOST_TEXT:
                quoted = out[p].split("//@", 1)[0][:60]
                text = f"{text}//@{author_names[p]}:{quoted}"
            out.append(text)
        return out
