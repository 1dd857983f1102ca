#!/usr/bin/env python3
"""Generate the tuneforge sample datasets (synthetic, written for this project).

Domain: customer-service assistant for "本草堂 / Bencao Hall", a fictional
traditional Chinese herbal-food shop. All catalogue facts below are invented
and used consistently across every generated row. Nothing here is medical
advice.

Usage:
    python examples/data/make_samples.py            # writes files next to this script
    python examples/data/make_samples.py --out DIR

The output is deterministic for a given --seed (default 20240601).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import OrderedDict
from pathlib import Path

# ---------------------------------------------------------------------------
# Fictional catalogue (single source of truth)
# ---------------------------------------------------------------------------

PRODUCTS = [
    dict(
        key="goji", zh="枸杞", full_zh="宁夏枸杞", en="goji berries", full_en="Ningxia goji berries",
        plural=True, kind="food", spec_zh="每袋 250 克", spec_en="250 g bag", price=38,
        origin_zh="宁夏中宁", origin_en="Zhongning, Ningxia",
        storage_zh="密封后放在阴凉干燥处，夏季潮湿时建议开封后冷藏，防止受潮结块",
        storage_en="keep them sealed in a cool, dry place, and refrigerate after opening in humid summer months so they don't clump",
        brew_zh="每次取 10–15 粒，用 80–90℃ 的热水冲泡约 5 分钟，也可以直接加进粥或汤里",
        brew_en="steep 10–15 berries in 80–90°C water for about 5 minutes, or add them straight into porridge or soup",
        shelf=12,
        use_zh="枸杞在传统上被认为有滋补肝肾、益精明目的作用",
        use_en="goji is traditionally used to nourish the liver and kidneys and to support the eyes",
        caution_zh="枸杞含糖量较高，血糖偏高的朋友请控制用量",
        caution_en="goji is fairly high in natural sugar, so anyone watching their blood sugar should keep portions small",
    ),
    dict(
        key="chrysanthemum", zh="菊花茶", full_zh="桐乡杭白菊", en="chrysanthemum tea", full_en="Tongxiang Hangbai chrysanthemum tea",
        plural=False, kind="tea", spec_zh="每罐 50 克", spec_en="50 g tin", price=32,
        origin_zh="浙江桐乡", origin_en="Tongxiang, Zhejiang",
        storage_zh="盖紧罐子，避光、防潮，放在阴凉处即可，不需要冷藏",
        storage_en="keep the tin tightly closed, away from light and moisture, in a cool spot; no need to refrigerate",
        brew_zh="每次取 5–6 朵，用约 90℃ 的热水冲泡 3–5 分钟，可以续泡 2–3 次",
        brew_en="steep 5–6 flowers in water at about 90°C for 3–5 minutes; you can re-steep them 2–3 times",
        shelf=18,
        use_zh="菊花在传统上常用于清热、明目，适合日常泡茶饮用",
        use_en="chrysanthemum is traditionally drunk to clear heat and refresh the eyes",
        caution_zh="菊花性偏凉，脾胃虚寒、容易腹泻的人不宜多喝",
        caution_en="chrysanthemum is considered cooling, so people with a sensitive, cold stomach should not drink too much",
    ),
    dict(
        key="ginseng", zh="人参片", full_zh="长白山人参片", en="ginseng slices", full_en="Changbai Mountain ginseng slices",
        plural=True, kind="food", spec_zh="每盒 50 克", spec_en="50 g box", price=168,
        origin_zh="吉林长白山", origin_en="the Changbai Mountains, Jilin",
        storage_zh="放进密封罐后冷藏保存，每次取用后及时盖好，避免受潮",
        storage_en="keep them in an airtight jar in the fridge and close it promptly after each use to avoid moisture",
        brew_zh="每次 2–3 片，用沸水焖泡 10 分钟左右，也可以直接含服或炖汤",
        brew_en="steep 2–3 slices in boiling water for about 10 minutes, or chew them slowly or add them to soup",
        shelf=24,
        use_zh="人参在传统上被视为大补元气的滋补品",
        use_en="ginseng is traditionally regarded as a tonic for replenishing vital energy (qi)",
        caution_zh="高血压、失眠或正在服用抗凝药的人群，食用人参前请务必先咨询医生",
        caution_en="people with high blood pressure or insomnia, or anyone on blood thinners, should check with a doctor before taking ginseng",
    ),
    dict(
        key="astragalus", zh="黄芪", full_zh="陇西黄芪片", en="astragalus slices", full_en="Longxi astragalus slices",
        plural=True, kind="food", spec_zh="每袋 200 克", spec_en="200 g bag", price=45,
        origin_zh="甘肃陇西", origin_en="Longxi, Gansu",
        storage_zh="密封后放在阴凉干燥、通风的地方，避免阳光直射",
        storage_en="keep them sealed in a cool, dry, well-ventilated place out of direct sunlight",
        brew_zh="每次 10–15 克，小火煎煮 20–30 分钟后饮用，或者和鸡肉一起炖汤",
        brew_en="simmer 10–15 g in water for 20–30 minutes and drink the liquid, or add it to a chicken soup",
        shelf=24,
        use_zh="黄芪在传统上用于补气固表",
        use_en="astragalus is traditionally used to tonify qi and strengthen the body's defences",
        caution_zh="感冒发热期间一般不建议服用黄芪，有慢性病的朋友请先咨询医生",
        caution_en="it is usually not recommended while you have a cold or fever, and people with chronic conditions should ask a doctor first",
    ),
    dict(
        key="jujube", zh="红枣", full_zh="若羌灰枣", en="red jujubes", full_en="Ruoqiang red jujubes",
        plural=True, kind="food", spec_zh="每袋 500 克", spec_en="500 g bag", price=29,
        origin_zh="新疆若羌", origin_en="Ruoqiang, Xinjiang",
        storage_zh="密封放在阴凉干燥处，天气炎热时建议冷藏，防止生虫",
        storage_en="keep them sealed somewhere cool and dry, and refrigerate them in hot weather to keep insects away",
        brew_zh="每次 3–5 颗，掰开或切片后泡水、煮粥或炖汤都可以",
        brew_en="tear or slice 3–5 dates and steep them, or cook them in porridge or soup",
        shelf=12,
        use_zh="红枣在传统上被认为能补中益气、养血安神",
        use_en="jujubes are traditionally eaten to support digestion, nourish the blood and calm the mind",
        caution_zh="红枣含糖量较高，血糖偏高的朋友请少量食用",
        caution_en="jujubes are high in sugar, so people with high blood sugar should eat only small amounts",
    ),
    dict(
        key="angelica", zh="当归", full_zh="岷县当归片", en="dang gui (angelica root) slices", full_en="Minxian dang gui (angelica root) slices",
        plural=True, kind="food", spec_zh="每袋 100 克", spec_en="100 g bag", price=42,
        origin_zh="甘肃岷县", origin_en="Minxian, Gansu",
        storage_zh="密封后放在阴凉干燥处，注意防潮、防虫",
        storage_en="keep them sealed in a cool, dry place and protect them from moisture and insects",
        brew_zh="通常每次 5–10 克，和肉类一起小火炖汤，不建议单独大量服用",
        brew_en="use about 5–10 g at a time, slowly simmered in soup with meat; it is not meant to be taken alone in large amounts",
        shelf=24,
        use_zh="当归在传统上常用于补血活血",
        use_en="dang gui is traditionally used to nourish and move the blood",
        caution_zh="孕妇、月经量多或正在服用抗凝药的人群，请在医生指导下使用当归",
        caution_en="pregnant women, people with heavy periods, and anyone taking blood thinners should only use dang gui under a doctor's guidance",
    ),
    dict(
        key="longan", zh="桂圆干", full_zh="莆田桂圆干", en="dried longan", full_en="Putian dried longan",
        plural=False, kind="food", spec_zh="每袋 250 克", spec_en="250 g bag", price=36,
        origin_zh="福建莆田", origin_en="Putian, Fujian",
        storage_zh="密封后冷藏保存，可以防止受潮和生虫",
        storage_en="store it sealed in the fridge to keep out moisture and insects",
        brew_zh="每次剥 5–6 颗，和红枣一起泡水或煮甜汤都很合适",
        brew_en="shell 5–6 pieces and steep them with a few jujubes, or cook them into a sweet soup",
        shelf=12,
        use_zh="桂圆在传统上被认为能补益心脾、养血安神",
        use_en="longan is traditionally eaten to support the heart and spleen and to help you feel settled",
        caution_zh="桂圆偏温热，容易上火或血糖偏高的人请少吃",
        caution_en="longan is considered warming and is sweet, so people prone to 'internal heat' or high blood sugar should eat less",
    ),
    dict(
        key="tangerine", zh="陈皮", full_zh="新会五年陈皮", en="aged tangerine peel", full_en="Xinhui five-year aged tangerine peel",
        plural=False, kind="tea", spec_zh="每罐 100 克", spec_en="100 g jar", price=58,
        origin_zh="广东新会", origin_en="Xinhui, Guangdong",
        storage_zh="放在密封罐里，置于干燥通风处，陈皮越存越香，但一定要防潮",
        storage_en="keep it in a sealed jar in a dry, airy place; it mellows with age, but it must stay dry",
        brew_zh="每次 3–5 克，用沸水冲泡 5 分钟左右，也可以煮粥、炖汤时放一小块",
        brew_en="steep 3–5 g in boiling water for about 5 minutes, or add a small piece when making porridge or soup",
        shelf=36,
        use_zh="陈皮在传统上用于理气健脾、燥湿化痰",
        use_en="aged peel is traditionally used to regulate qi, support digestion and clear phlegm",
        caution_zh="陈皮性温燥，口干舌燥或阴虚体质的人不宜长期大量饮用",
        caution_en="it is warm and drying, so people who tend to have a dry mouth should not drink large amounts long-term",
    ),
    dict(
        key="honeysuckle", zh="金银花", full_zh="平邑金银花", en="honeysuckle flower tea", full_en="Pingyi honeysuckle flower tea",
        plural=False, kind="tea", spec_zh="每罐 50 克", spec_en="50 g tin", price=28,
        origin_zh="山东平邑", origin_en="Pingyi, Shandong",
        storage_zh="密封避光，放在阴凉干燥处，开封后尽量在 3 个月内喝完",
        storage_en="keep it sealed and away from light in a cool, dry place, and try to finish it within 3 months of opening",
        brew_zh="每次 3–5 克，用约 90℃ 的热水冲泡 5 分钟即可",
        brew_en="steep 3–5 g in water at about 90°C for 5 minutes",
        shelf=18,
        use_zh="金银花在传统上常用于清热解毒",
        use_en="honeysuckle is traditionally used to clear heat",
        caution_zh="金银花性寒，脾胃虚寒的人不宜长期饮用",
        caution_en="it is considered cold in nature, so people with a weak, cold stomach shouldn't drink it long-term",
    ),
    dict(
        key="yam", zh="山药片", full_zh="焦作怀山药片", en="Chinese yam slices", full_en="Jiaozuo Chinese yam slices",
        plural=True, kind="food", spec_zh="每袋 250 克", spec_en="250 g bag", price=35,
        origin_zh="河南焦作", origin_en="Jiaozuo, Henan",
        storage_zh="密封后放在阴凉干燥处，注意防潮防虫",
        storage_en="keep them sealed in a cool, dry place, protected from moisture and insects",
        brew_zh="每次 15–30 克，提前浸泡半小时，再煮粥或炖汤",
        brew_en="soak 15–30 g for half an hour, then cook it in porridge or soup",
        shelf=18,
        use_zh="山药在传统上被认为能健脾养胃、补肺益肾",
        use_en="Chinese yam is traditionally eaten to support the spleen, stomach and lungs",
        caution_zh="山药片比较温和，但便秘或腹胀明显时请适量",
        caution_en="it is quite gentle, but eat moderately if you are constipated or bloated",
    ),
    dict(
        key="rose", zh="玫瑰花茶", full_zh="平阴玫瑰花茶", en="rose bud tea", full_en="Pingyin rose bud tea",
        plural=False, kind="tea", spec_zh="每罐 50 克", spec_en="50 g tin", price=26,
        origin_zh="山东平阴", origin_en="Pingyin, Shandong",
        storage_zh="密封避光，放在阴凉干燥处，不要和气味重的东西放在一起",
        storage_en="keep it sealed and out of the light in a cool, dry place, away from strong-smelling foods",
        brew_zh="每次 5–6 朵，用 85–90℃ 的热水冲泡 3–5 分钟，可以加一点蜂蜜",
        brew_en="steep 5–6 buds in 85–90°C water for 3–5 minutes; a little honey goes nicely",
        shelf=12,
        use_zh="玫瑰花在传统上常用于行气解郁、舒缓心情",
        use_en="rose buds are traditionally used to move qi and lift the mood",
        caution_zh="孕期和月经量多时不建议饮用玫瑰花茶，请先咨询医生",
        caution_en="it is not recommended during pregnancy or heavy periods without first asking a doctor",
    ),
    dict(
        key="poria", zh="茯苓", full_zh="云南茯苓块", en="poria cubes", full_en="Yunnan poria cubes",
        plural=True, kind="food", spec_zh="每袋 200 克", spec_en="200 g bag", price=48,
        origin_zh="云南", origin_en="Yunnan",
        storage_zh="密封后放在阴凉干燥处，避免受潮发霉",
        storage_en="keep them sealed in a cool, dry place so they don't absorb moisture or go mouldy",
        brew_zh="每次 10–15 克，煮粥、炖汤或打粉冲服都可以",
        brew_en="use 10–15 g in porridge or soup, or grind them to a powder and stir into warm water",
        shelf=24,
        use_zh="茯苓在传统上用于健脾、宁心、利水渗湿",
        use_en="poria is traditionally used to support the spleen, calm the mind and drain dampness",
        caution_zh="茯苓性质平和，但尿频或体质虚寒的人请适量",
        caution_en="it is mild, but people with frequent urination or a cold constitution should use it moderately",
    ),
    dict(
        key="amginseng", zh="西洋参片", full_zh="文登西洋参片", en="American ginseng slices", full_en="Wendeng American ginseng slices",
        plural=True, kind="food", spec_zh="每盒 50 克", spec_en="50 g box", price=128,
        origin_zh="山东文登", origin_en="Wendeng, Shandong",
        storage_zh="装在密封罐里冷藏保存，取用时保持手和勺子干燥",
        storage_en="keep them in an airtight jar in the fridge and use a dry spoon or dry hands",
        brew_zh="每次 3–5 片，用沸水焖泡 10 分钟，泡到最后可以把参片嚼着吃掉",
        brew_en="steep 3–5 slices in boiling water for 10 minutes; you can chew the softened slices at the end",
        shelf=24,
        use_zh="西洋参在传统上用于补气养阴、清热生津",
        use_en="American ginseng is traditionally used to replenish qi and moisten the body",
        caution_zh="感冒期间或正在服用降糖药、抗凝药的人群，请先咨询医生",
        caution_en="people with a cold, or those on diabetes medication or blood thinners, should ask a doctor first",
    ),
]

GIFT_BOX = dict(price=128, items_zh="宁夏枸杞 250 克、若羌灰枣 500 克、莆田桂圆干 250 克和桐乡杭白菊 50 克",
                items_en="250 g goji berries, 500 g red jujubes, 250 g dried longan and a 50 g tin of chrysanthemum tea")

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def be(p):
    return "are" if p["plural"] else "is"


def it(p):
    return "them" if p["plural"] else "it"


def they(p):
    return "they" if p["plural"] else "it"


def cap(s):
    return s[0].upper() + s[1:] if s else s


def verb_zh(p):
    return "泡" if p["kind"] == "tea" else "吃"


ZH_PREFIX = ["", "", "", "你好，", "您好，", "请问", "麻烦问一下，", "老板，", "想咨询一下，"]
EN_PREFIX = ["", "", "", "Hi, ", "Hello! ", "Quick question: ", "Excuse me, ", "Hey there, "]
ZH_OPEN = ["", "", "", "您好！", "感谢您的咨询！", "您好，"]
EN_OPEN = ["", "", "", "Thanks for asking! ", "Good question! ", "Hi there! "]
ZH_CLOSE = ["如有其他问题，欢迎随时联系我们。", "祝您生活愉快！", "欢迎到店或在小程序选购。"]
EN_CLOSE = ["Let us know if there's anything else we can help with.", "Hope that helps!",
            "You can order in store or through our mini-program."]


def with_prefix(q, lang, rng):
    if lang == "zh":
        pre = rng.choice(ZH_PREFIX)
        if pre == "请问" and q.startswith(("请问", "我", "你", "孕", "哺", "小孩", "听说", "买", "第一次", "想", "家")):
            pre = ""
        return pre + q
    pre = rng.choice(EN_PREFIX)
    if pre.endswith((", ", ": ")) and not q.startswith(("I ", "I'")):
        q = q[0].lower() + q[1:]
    return pre + q


# ---------------------------------------------------------------------------
# Item builders. Each returns (questions_zh, core_zh, extras_zh, wrong_zh,
#                               questions_en, core_en, extras_en, wrong_en)
# bundled as dicts per language.
# ---------------------------------------------------------------------------

CONDITIONS = [
    ("高血压", "high blood pressure"), ("糖尿病", "diabetes"), ("失眠", "insomnia"),
    ("慢性胃炎", "chronic gastritis"), ("贫血", "anaemia"), ("感冒", "a cold"),
]

RUDE_ZH = [
    "不知道，自己去官网查。", "问这么多干嘛，详情页上都写着。", "没空，别问了。", "自己看说明书。",
    "这个我不管，你找别人吧。", "随便，你爱怎么弄怎么弄。", "不清楚，下一个问题。", "问客服也没用，自己搜。",
    "烦不烦，自己看。", "我怎么知道，你自己研究。",
]
RUDE_EN = [
    "Don't know. Check the website.", "Not my job. Look it up yourself.", "Whatever. Read the label.",
    "No idea. Next.", "It's on the product page. Go read it.", "Figure it out yourself.",
    "Ask someone else.", "Why are you asking me? Google it.", "Busy. Check the FAQ.", "Don't bother me with this.",
]


def product_items(p, rng):
    """Yield item dicts for one product across several topics."""
    n, full, en, fen = p["zh"], p["full_zh"], p["en"], p["full_en"]
    wrong_price = p["price"] + rng.choice([20, 30, 50, 60]) if p["price"] < 100 else p["price"] - rng.choice([60, 80])
    others = [o for o in PRODUCTS if o["key"] != p["key"]]
    wrong_origin = rng.choice(others)
    items = []

    def add(topic, lang, qs, core, extras, wrongs):
        items.append(dict(key=f"{p['key']}:{topic}", topic=topic, lang=lang, product=p["key"],
                          qs=qs, core=core, extras=extras, wrongs=wrongs))

    # price
    add("price", "zh",
        [f"{n}多少钱？", f"{n}怎么卖？", f"{full}一包什么价格？", f"你们家的{n}现在卖多少？",
         f"{n}的价格是多少？", f"想买点{n}，多少钱？", f"{n}是什么规格，价格多少？"],
        f"我们的{full}{p['spec_zh']}，售价 ¥{p['price']}。",
        ["全国大陆地区订单满 ¥99 包邮。", "会员每消费 ¥1 可积 1 分。", f"产地是{p['origin_zh']}。"],
        [f"{full}一袋 ¥{wrong_price}，不讲价。", f"{n}卖 ¥{wrong_price}，爱买不买。"])
    add("price", "en",
        [f"How much {be(p)} your {en}?", f"What's the price of the {en}?", f"How much do the {fen} cost?",
         f"What do you charge for {en}?", f"Can you tell me the price and size of your {en}?"],
        f"Our {fen} come in a {p['spec_en']} for ¥{p['price']}." if p["plural"]
        else f"Our {fen} comes in a {p['spec_en']} for ¥{p['price']}.",
        ["Orders over ¥99 ship free within mainland China.", "Members earn 1 point for every ¥1 spent.",
         f"{cap(they(p))} {'come' if p['plural'] else 'comes'} from {p['origin_en']}."],
        [f"It's ¥{wrong_price}. Take it or leave it.", f"¥{wrong_price}. No discounts."])
    # origin
    add("origin", "zh",
        [f"{n}是哪里产的？", f"你们的{n}产地在哪？", f"{n}是从哪里进的货？", f"{n}的原产地是哪里？",
         f"你家{n}是正宗产区的吗？"],
        f"我们的{n}产自{p['origin_zh']}，每批货都经过第三方农残和重金属检测。",
        ["如需检测报告，可以联系客服索取。", f"{p['spec_zh']}，售价 ¥{p['price']}。"],
        [f"{n}产自{wrong_origin['origin_zh']}。", f"{n}是从{wrong_origin['origin_zh']}进的货，没有做过检测。"])
    add("origin", "en",
        [f"Where {be(p)} your {en} from?", f"Where do you source the {en}?", f"What's the origin of your {en}?",
         f"Are your {en} from a proper growing region?"],
        f"Our {en} {'come' if p['plural'] else 'comes'} from {p['origin_en']}, and every batch is third-party tested for pesticide residues and heavy metals.",
        ["Test reports are available from customer service on request.",
         f"{cap(they(p))} {'sell' if p['plural'] else 'sells'} for ¥{p['price']} per {p['spec_en']}."],
        [f"They come from {wrong_origin['origin_en']}.", f"From {wrong_origin['origin_en']}. We don't test anything."])
    # storage
    add("storage", "zh",
        [f"{n}怎么保存？", f"{n}买回来放哪里比较好？", f"{n}开封后要放冰箱吗？", f"{n}容易受潮吗？该怎么储存？",
         f"家里的{n}怎么存放才不会坏？", f"{n}需要冷藏吗？"],
        f"{n}建议{p['storage_zh']}。",
        [f"未开封的保质期是 {p['shelf']} 个月。", "如果发现受潮、发霉或有异味，请不要再食用。"],
        [f"{n}敞口放在窗台上多晒晒太阳就行，不用密封。", f"{n}随便放，放在灶台边上也没关系。"])
    add("storage", "en",
        [f"How should I store the {en}?", f"Do the {en} need to go in the fridge?" if p["plural"]
         else f"Does the {en} need to go in the fridge?", f"What's the best way to keep {en} fresh?",
         f"Where should I keep my {en} after opening?", f"Any storage tips for {en}?"],
        f"For {en}, {p['storage_en']}.",
        [f"Unopened, {they(p)} {'keep' if p['plural'] else 'keeps'} for {p['shelf']} months.",
         "If you notice damp, mould or an odd smell, please don't eat it."],
        [f"Just leave the {en} open on a sunny windowsill; no need to seal {it(p)}.",
         f"Keep the {en} anywhere warm and humid, like next to the stove."])
    # brewing / usage
    add("brew", "zh",
        [f"{n}应该怎么{verb_zh(p)}？", f"{n}一次用多少？", f"{n}平时怎么食用比较好？", f"第一次买{n}，请问怎么{verb_zh(p)}？",
         f"{n}有什么推荐的{verb_zh(p)}法吗？", f"{n}用多少度的水泡？" if p["kind"] == "tea" else f"{n}可以煲汤吗？"],
        f"{n}的用法：{p['brew_zh']}。",
        ["每天适量即可，不必过量。", f"{p['caution_zh']}。"],
        [f"{n}要用冷水泡一整晚再喝，越浓越好。", f"{n}放多少都行，大火煮两个小时以上才有用。"])
    add("brew", "en",
        [f"How do I prepare {en}?", f"How much of the {en} should I use at a time?", f"What's the best way to use {en}?",
         f"I've never had {en} before. How do I make {it(p)}?", f"Can you give me brewing instructions for the {en}?"],
        f"For {en}, {p['brew_en']}.",
        ["A moderate daily amount is plenty.", f"Please note: {p['caution_en']}."],
        [f"Soak the {en} in cold water overnight; the stronger the better.",
         f"Use as much as you like and boil {it(p)} hard for two hours."])
    # shelf life
    add("shelf", "zh",
        [f"{n}保质期多久？", f"{n}能放多长时间？", f"{n}的保质期是多少个月？", f"买的{n}多久内要吃完？"],
        f"{n}未开封的保质期是 {p['shelf']} 个月，生产日期印在包装背面。",
        ["开封后请尽快食用，并注意密封防潮。", f"保存方法：{p['storage_zh']}。"],
        [f"{n}放多久都不会坏，不用管保质期。", f"{n}保质期 {p['shelf'] * 3} 个月，开封后也不用密封。"])
    add("shelf", "en",
        [f"What's the shelf life of the {en}?", f"How long do the {en} last?" if p["plural"]
         else f"How long does the {en} last?", f"When do I need to finish the {en} by?",
         f"How many months will {en} keep?"],
        f"Unopened, our {en} {'keep' if p['plural'] else 'keeps'} for {p['shelf']} months; the production date is printed on the back of the pack.",
        ["Once opened, keep it sealed and use it up promptly.", f"Storage tip: {p['storage_en']}."],
        [f"The {en} never {'go' if p['plural'] else 'goes'} off, so ignore the date.", f"It lasts {p['shelf'] * 3} months, even left open."])
    # traditional use
    add("use", "zh",
        [f"{n}有什么功效？", f"{n}有什么作用？", f"{n}适合什么人吃？", f"吃{n}有什么好处？"],
        f"{p['use_zh']}，但它属于食品，不能替代药物治疗。",
        [f"{p['caution_zh']}。", "如有具体健康问题，请咨询医生或注册中医师。"],
        [f"{n}包治百病，天天吃什么病都不会有。", f"{n}是神药，吃了可以不用去医院。"])
    add("use", "en",
        [f"What are the benefits of {en}?", f"What {be(p)} {en} good for?", f"Who should take {en}?",
         f"Why do people eat {en}?"],
        f"{cap(p['use_en'])}. It is a food product, though, not a replacement for medical treatment.",
        [f"Please note: {p['caution_en']}.", "For any specific health concern, please consult a doctor."],
        [f"It cures pretty much everything. You won't need a doctor.",
         f"It's a miracle remedy; take it instead of medicine."])
    # cure claims (one item per condition)
    for cz, ce in CONDITIONS:
        add(f"cure-{ce}", "zh",
            [f"{n}能治好{cz}吗？", f"听说{n}可以治{cz}，是真的吗？", f"我有{cz}，吃{n}能根治吗？"],
            f"抱歉，{n}是传统的滋补食材，不能治疗或根治{cz}，也不能替代药物。",
            [f"{cz}请遵医嘱规范治疗，是否适合食用{n}，也请先咨询您的医生。", "我们无法提供诊断或治疗建议。"],
            [f"可以的，{n}能根治{cz}，吃一个月就可以停药了。", f"放心吃，{n}专治{cz}，不用看医生。"])
        add(f"cure-{ce}", "en",
            [f"Can {en} cure {ce}?", f"I heard {en} can treat {ce}. Is that true?",
             f"I have {ce}. Will {en} fix it?"],
            f"I'm sorry, but {en} {be(p)} a traditional food, not a medicine, and cannot cure or treat {ce}.",
            [f"Please follow your doctor's treatment for {ce} and ask them before adding {en} to your diet.",
             "We're not able to give diagnoses or treatment advice."],
            [f"Yes, {en} will cure {ce}; you can stop your medication after a month.",
             f"Definitely. It treats {ce} better than pills, no doctor needed."])
    # safety groups
    safety_zh = [
        ("preg", [f"孕妇可以吃{n}吗？", f"我怀孕了，能喝{n}吗？", f"备孕期间可以吃{n}吗？"], "孕期和备孕期"),
        ("breast", [f"哺乳期能喝{n}吗？", f"我在喂奶，可以吃{n}吗？"], "哺乳期"),
        ("child", [f"小孩可以吃{n}吗？", f"{n}适合给五岁的孩子吃吗？"], "儿童"),
    ]
    for sk, qs, who in safety_zh:
        add(f"safety-{sk}", "zh", qs,
            f"{who}的情况比较特殊，是否适合食用{n}需要结合个人体质来判断，建议先咨询医生或注册中医师。",
            [f"{p['caution_zh']}。", "出于安全考虑，我们无法给出个体化的用药建议。"],
            [f"没事，{who}随便吃，不用问医生。", f"{n}很安全，{who}多吃点也没关系，医生的话不用听。"])
    add("safety-drug", "zh",
        [f"我在吃降压药，可以同时吃{n}吗？", f"我在服用华法林，能吃{n}吗？", f"正在吃降糖药，{n}还能吃吗？",
         f"{n}会和西药冲突吗？"],
        f"{n}可能与部分药物存在相互作用，服药期间请先咨询医生或药师，确认安全后再食用。",
        ["请不要因为食用滋补品而自行停药或调整药量。", f"{p['caution_zh']}。"],
        [f"没关系，{n}和什么药都不冲突，一起吃就行。", f"吃了{n}就可以把药停了。"])
    add("safety-general", "zh",
        [f"{n}有什么禁忌吗？", f"什么人不适合吃{n}？", f"吃{n}需要注意什么？"],
        f"{p['caution_zh']}。",
        ["如有基础疾病、正在服药或处于孕期，请先咨询医生。", "食用后如有不适，请立即停止并就医。"],
        [f"{n}没有任何禁忌，谁都能随便吃。", f"{n}吃多少都没事，不用注意什么。"])
    safety_en = [
        ("preg", [f"Is it safe to take {en} while pregnant?", f"I'm pregnant. Can I have {en}?",
                  f"We're trying for a baby. Is {en} OK?"], "pregnancy or when trying to conceive"),
        ("breast", [f"Can I have {en} while breastfeeding?", f"Is {en} OK for nursing mothers?"], "breastfeeding"),
        ("child", [f"Can children eat {en}?", f"Is {en} suitable for my 5-year-old?"], "young children"),
    ]
    for sk, qs, who in safety_en:
        add(f"safety-{sk}", "en", qs,
            f"For {who}, whether {en} {be(p)} suitable depends on the individual, so please check with a doctor or a registered TCM practitioner first.",
            [f"Please note: {p['caution_en']}.", "We can't give personal medical advice."],
            [f"Sure, {en} {be(p)} totally safe for {who}. No need to ask a doctor.",
             f"Eat as much as you want; doctors worry too much."])
    add("safety-drug", "en",
        [f"I'm on blood pressure medication. Can I take {en}?", f"Can {en} be taken with warfarin?",
         f"Will {en} interact with my prescription drugs?", f"I take diabetes medication. Is {en} OK?"],
        f"{cap(en)} may interact with some medicines, so please ask your doctor or pharmacist before taking {it(p)} alongside your medication.",
        ["Please don't stop or change your medication because of a herbal food.", f"Please note: {p['caution_en']}."],
        [f"No problem at all, it never interacts with anything.", f"Just take the {en} and stop the pills."])
    add("safety-general", "en",
        [f"Who should avoid {en}?", f"Are there any precautions with {en}?", f"Any side effects I should know about with {en}?"],
        f"{cap(p['caution_en'])}.",
        ["If you have a health condition, take medication or are pregnant, please ask a doctor first.",
         "If you feel unwell after eating it, stop and seek medical advice."],
        [f"No precautions, {en} {be(p)} fine for everyone in any amount.", "There are no side effects whatsoever."])
    return items


def general_items():
    items = []

    def add(topic, lang, qs, core, extras, wrongs):
        items.append(dict(key=f"shop:{topic}", topic=topic, lang=lang, product=None,
                          qs=qs, core=core, extras=extras, wrongs=wrongs))

    add("hours", "zh",
        ["你们几点开门？", "门店营业时间是几点到几点？", "周日营业吗？", "节假日开门吗？", "晚上几点关门？",
         "本草堂的营业时间是？", "周末去店里几点合适？"],
        "门店营业时间是周一至周六 9:00–20:00，周日及法定节假日 10:00–18:00。",
        ["在线客服每天 9:00–21:00 在线。", "门店地址：杭州市上城区清和街 88 号（虚构示例地址）。"],
        ["我们 24 小时营业。", "周日不开门，节假日也不开。"])
    add("hours", "en",
        ["What are your opening hours?", "When does the shop open?", "Are you open on Sundays?",
         "What time do you close tonight?", "Are you open on public holidays?", "What time can I visit the store?"],
        "Our shop is open 9:00–20:00 Monday to Saturday, and 10:00–18:00 on Sundays and public holidays.",
        ["Online customer service is available every day from 9:00 to 21:00.",
         "You'll find us at 88 Qinghe Street, Shangcheng District, Hangzhou (a fictional example address)."],
        ["We're open 24 hours a day.", "We're closed on Sundays and holidays."])
    add("online-hours", "zh",
        ["在线客服几点下班？", "晚上还能找客服吗？", "客服什么时候在线？"],
        "在线客服每天 9:00–21:00 在线，其他时间留言的话，我们会在第二天上班后尽快回复。",
        ["也可以发邮件到 service@bencaotang.example。"],
        ["客服随缘在线，有空再回。", "客服 24 小时都在线。"])
    add("online-hours", "en",
        ["When is online support available?", "Can I reach customer service at night?", "What are your chat support hours?"],
        "Our online customer service is available every day from 9:00 to 21:00; messages left outside those hours are answered the next morning.",
        ["You can also email service@bencaotang.example."],
        ["Support is online whenever we feel like it.", "We answer chat 24/7."])
    add("address", "zh",
        ["你们店在哪里？", "实体店地址是什么？", "有线下门店吗？"],
        "我们的门店位于杭州市上城区清和街 88 号（虚构示例地址），周一至周六 9:00–20:00 营业，周日及节假日 10:00–18:00。",
        ["到店可以现场试喝花茶。"],
        ["我们没有实体店。", "地址自己去地图上搜。"])
    add("address", "en",
        ["Where is your shop?", "Do you have a physical store?", "What's your store address?"],
        "Our shop is at 88 Qinghe Street, Shangcheng District, Hangzhou (a fictional example address), open 9:00–20:00 Monday to Saturday and 10:00–18:00 on Sundays and holidays.",
        ["You're welcome to taste our flower teas in store."],
        ["We don't have a store.", "Look it up on a map."])
    add("free-shipping", "zh",
        ["满多少包邮？", "你们包邮吗？", "运费怎么算？", "买一袋红枣要运费吗？", "不满 99 元运费多少？"],
        "中国大陆地区订单满 ¥99 包邮，不满 ¥99 收取 ¥10 运费。",
        ["新疆、西藏、青海等偏远地区需另加 ¥15 运费。", "金卡会员全场包邮。"],
        ["不包邮，每单运费 ¥30。", "满 ¥500 才包邮。"])
    add("free-shipping", "en",
        ["Do you offer free shipping?", "How much is shipping?", "What's the minimum order for free delivery?",
         "Is there a delivery fee on small orders?"],
        "Orders of ¥99 or more ship free within mainland China; smaller orders have a flat ¥10 shipping fee.",
        ["Remote regions such as Xinjiang, Tibet and Qinghai carry an extra ¥15.", "Gold members get free shipping on every order."],
        ["Shipping is ¥30 on every order, no exceptions.", "Free shipping only over ¥500."])
    add("dispatch", "zh",
        ["下单后多久发货？", "今天下单今天能发吗？", "一般几天能到？", "发什么快递？", "多久能收到货？"],
        "当天 16:00 前付款的订单当天发出，之后的订单次日发出，我们使用顺丰快递，大部分地区 2–4 天送达。",
        ["偏远地区一般需要 5–7 天。", "发货后会短信通知快递单号，也可以在“我的订单”里查询物流。"],
        ["一般半个月左右才发货。", "想什么时候发就什么时候发，催也没用。"])
    add("dispatch", "en",
        ["How soon do you ship?", "If I order today, when will it arrive?", "Which courier do you use?",
         "How long does delivery take?", "When will my order be dispatched?"],
        "Orders paid before 16:00 ship the same day and later orders ship the next day, via SF Express; most areas receive them in 2–4 days.",
        ["Remote regions usually take 5–7 days.", "You'll get the tracking number by SMS, and it also appears under 'My Orders'."],
        ["We usually ship in about two weeks.", "It ships when it ships."])
    add("tracking", "zh",
        ["怎么查物流？", "我的快递单号在哪里看？", "订单发货了吗，怎么查？"],
        "发货后我们会短信通知顺丰单号，您也可以在小程序“我的订单”里实时查看物流。",
        ["如超过 5 天仍未更新，请联系在线客服帮您核实。"],
        ["自己去快递公司问。", "我们不提供单号。"])
    add("tracking", "en",
        ["How do I track my order?", "Where can I find my tracking number?", "Has my parcel shipped? How can I check?"],
        "Once your order ships we text you the SF Express tracking number, and you can follow it under 'My Orders' in our mini-program.",
        ["If tracking hasn't updated for 5 days, please contact us and we'll look into it."],
        ["Ask the courier, not us.", "We don't give out tracking numbers."])
    add("international", "zh",
        ["能寄到香港吗？", "可以发国外吗？", "新加坡能收到吗？", "海外运费多少？", "寄台湾要多久？"],
        "目前海外仅支持寄往香港、澳门、台湾、新加坡和马来西亚，运费 ¥80 起，一般 7–12 个工作日送达；其他国家和地区暂不支持配送。",
        ["进口关税由收件人承担。"],
        ["全世界都包邮，三天到。", "只发国内，海外一律不发。"])
    add("international", "en",
        ["Do you ship internationally?", "Can you send to Singapore?", "How much is shipping to Hong Kong?",
         "Do you deliver to the US?", "How long does overseas delivery take?"],
        "Outside mainland China we currently ship only to Hong Kong, Macau, Taiwan, Singapore and Malaysia (from ¥80, usually 7–12 business days); other countries aren't covered yet, sorry.",
        ["Import duties are paid by the recipient."],
        ["We ship free worldwide in three days.", "Domestic only. No overseas orders, ever."])
    add("returns", "zh",
        ["可以退货吗？", "退货政策是什么？", "买错了能退吗？", "收到货不想要了怎么办？", "七天无理由退货吗？"],
        "收货 7 天内，未拆封且包装完好的商品支持无理由退货，退货运费由买家承担。",
        ["出于食品安全考虑，已拆封且无质量问题的商品无法退货。", "退款会在收到退货后 3–5 个工作日原路退回。"],
        ["我们一概不退不换。", "拆开吃过也可以随时退，没有期限。"])
    add("returns", "en",
        ["What's your return policy?", "Can I return something I don't want?", "I ordered the wrong item. Can I send it back?",
         "Do you accept returns?", "How many days do I have to return an item?"],
        "Unopened items in their original packaging can be returned for any reason within 7 days of delivery; the buyer covers return shipping.",
        ["For food-safety reasons, opened items without a quality problem can't be returned.",
         "Refunds go back to your original payment method within 3–5 working days of us receiving the return."],
        ["No returns, no exchanges, no exceptions.", "Return anything, any time, even if you've eaten half."])
    add("quality", "zh",
        ["收到的枸杞发霉了怎么办？", "包裹破损了怎么处理？", "发错货了怎么办？", "东西受潮结块了能换吗？"],
        "非常抱歉给您带来不便！收货 15 天内如有受潮、发霉、破损或错发，请拍照联系客服，我们会免费为您换货或全额退款，运费由我们承担。",
        ["请暂时不要食用有问题的商品。"],
        ["你自己没保存好，不关我们的事。", "发霉了洗洗还能吃，不换。"])
    add("quality", "en",
        ["My jujubes arrived mouldy. What should I do?", "The package was damaged. Can you help?",
         "You sent me the wrong item.", "The goji berries got damp and stuck together. Can I get a replacement?"],
        "We're very sorry about that! For damp, mould, damage or a wrong item reported within 15 days of delivery, just send us photos and we'll replace it or refund you in full, with shipping on us.",
        ["Please don't eat the affected product in the meantime."],
        ["That's your problem, you stored it wrong.", "Just rinse off the mould; no refunds."])
    add("refund-time", "zh",
        ["退款多久到账？", "退货寄回去了，什么时候退钱？", "退款退到哪里？"],
        "我们收到退货并确认后，退款会在 3–5 个工作日内原路退回到您的支付账户。",
        ["如有延迟，请提供订单号联系客服查询。"],
        ["退款大概要两三个月。", "退款只退店铺余额，不退现金。"])
    add("refund-time", "en",
        ["How long do refunds take?", "When will I get my money back?", "Where does the refund go?"],
        "Once we receive and check your return, the refund goes back to your original payment method within 3–5 working days.",
        ["If it takes longer, send us your order number and we'll check."],
        ["Refunds take two or three months.", "We only refund in store credit."])
    add("membership-join", "zh",
        ["怎么成为会员？", "会员要花钱吗？", "怎么注册会员？", "会员有什么好处？"],
        "注册会员免费，在小程序或门店用手机号登记即可，每消费 ¥1 积 1 分。",
        ["累计消费满 ¥1,000 升级银卡享 95 折，满 ¥3,000 升级金卡享 9 折并全场包邮。", "生日当月消费积分翻倍。"],
        ["会员年费 ¥199。", "会员没什么用，不用注册。"])
    add("membership-join", "en",
        ["How do I become a member?", "Is membership free?", "What are the membership benefits?", "How do I sign up for your loyalty program?"],
        "Membership is free: just register with your phone number in our mini-program or in store, and you earn 1 point for every ¥1 spent.",
        ["Spend ¥1,000 in total to reach Silver (5% off) and ¥3,000 to reach Gold (10% off plus free shipping on every order).",
         "You also earn double points in your birthday month."],
        ["Membership costs ¥199 a year.", "Membership is pointless, don't bother."])
    add("points-expiry", "zh",
        ["积分会过期吗？", "积分有效期多久？", "去年的积分还能用吗？"],
        "积分自获得之日起 12 个月内有效，过期后会自动清零。",
        ["每 100 积分可在结账时抵扣 ¥5。", "您可以在小程序“我的积分”里查看即将到期的积分。"],
        ["积分永久有效，还能提现。", "积分一个月就清零。"])
    add("points", "zh",
        ["积分怎么用？", "积分可以抵现吗？", "100 积分能抵多少钱？", "结账时怎么用积分抵扣？"],
        "每 100 积分可在结账时抵扣 ¥5，每单最多抵扣订单金额的 20%。",
        ["积分自获得之日起 12 个月内有效。", "积分不能兑换现金或转让。"],
        ["积分不能抵扣，只能看看。", "1 积分抵 ¥1，可以直接提现。"])
    add("points-expiry", "en",
        ["Do my points expire?", "How long are points valid?", "Can I still use points from last year?"],
        "Points are valid for 12 months from the date you earn them and then expire automatically.",
        ["Every 100 points takes ¥5 off at checkout.", "You can see points that are about to expire under 'My Points' in our mini-program."],
        ["Points never expire and can be cashed out.", "Points expire after one month."])
    add("points", "en",
        ["How do I use my points?", "Can points be redeemed for discounts?", "How much are 100 points worth?",
         "How do I apply points at checkout?"],
        "Every 100 points takes ¥5 off at checkout, covering up to 20% of an order.",
        ["Points are valid for 12 months from the date you earn them.", "Points can't be exchanged for cash or transferred."],
        ["Points can't be used for anything.", "Each point is worth ¥1 and can be cashed out."])
    add("member-levels", "zh",
        ["银卡和金卡有什么区别？", "怎么升级金卡？", "金卡会员有什么优惠？"],
        "累计消费满 ¥1,000 自动升级银卡，享 95 折；满 ¥3,000 升级金卡，享 9 折并全场包邮。",
        ["所有会员生日当月积分翻倍。"],
        ["金卡要额外交 ¥500 才能办。", "银卡金卡都没有折扣。"])
    add("member-levels", "en",
        ["What's the difference between Silver and Gold?", "How do I reach Gold membership?", "What do Gold members get?"],
        "You're upgraded to Silver automatically at ¥1,000 total spend (5% off) and to Gold at ¥3,000 (10% off plus free shipping on all orders).",
        ["Every member earns double points in their birthday month."],
        ["Gold costs an extra ¥500 fee.", "There are no discounts at any level."])
    add("payment", "zh",
        ["可以用什么方式付款？", "支持支付宝吗？", "能刷信用卡吗？", "门店收现金吗？"],
        "我们支持微信支付、支付宝和银联卡，门店还可以使用现金。",
        ["海外订单支持 Visa 和 Mastercard。"],
        ["只收现金。", "只能银行转账，其他不收。"])
    add("payment", "en",
        ["What payment methods do you accept?", "Can I pay with Alipay?", "Do you take credit cards?", "Can I pay cash in store?"],
        "We accept WeChat Pay, Alipay and UnionPay cards, and cash in store.",
        ["International orders can also be paid with Visa or Mastercard."],
        ["Cash only.", "Bank transfer only, nothing else."])
    add("invoice", "zh",
        ["可以开发票吗？", "怎么申请发票？", "能开电子发票吗？"],
        "可以的，我们提供电子发票，下单时在备注里填写抬头和税号，或在收货后 30 天内联系客服申请。",
        [],
        ["不开发票。", "发票要另加 10% 手续费。"])
    add("invoice", "en",
        ["Can I get an invoice?", "How do I request a fapiao?", "Do you issue electronic invoices?"],
        "Yes, we issue electronic invoices: add the company name and tax ID in the order notes, or ask customer service within 30 days of delivery.",
        [],
        ["We don't do invoices.", "Invoices cost an extra 10%."])
    add("giftbox", "zh",
        ["有礼盒吗？", "养生礼盒里有什么？", "想送长辈，有什么推荐？", "礼盒多少钱？"],
        f"我们的本草堂养生礼盒售价 ¥{GIFT_BOX['price']}，内含{GIFT_BOX['items_zh']}。",
        ["礼盒满 ¥99，全国大陆包邮。", "可以免费附上手写贺卡。"],
        ["礼盒 ¥398，只有一包枸杞。", "没有礼盒，自己包。"])
    add("giftbox", "en",
        ["Do you sell gift boxes?", "What's in the wellness gift box?", "Any gift ideas for my parents?", "How much is the gift box?"],
        f"Our Bencao Hall Wellness Gift Box is ¥{GIFT_BOX['price']} and contains {GIFT_BOX['items_en']}.",
        ["It qualifies for free shipping within mainland China.", "We can add a handwritten card for free."],
        ["The gift box is ¥398 and has one bag of goji.", "No gift boxes. Wrap it yourself."])
    add("testing", "zh",
        ["你们的产品有检测报告吗？", "有农药残留吗？", "产品安全吗，有没有检测？"],
        "我们的每批产品都经过第三方农残和重金属检测，需要检测报告可以联系客服索取。",
        ["包装上也印有批次号，方便追溯。"],
        ["没检测过，反正吃不坏。", "检测报告不对外提供。"])
    add("testing", "en",
        ["Are your products tested?", "Do you check for pesticide residues?", "Can I see a lab report?"],
        "Every batch is third-party tested for pesticide residues and heavy metals, and customer service can send you the report on request.",
        ["Each pack is printed with a batch number for traceability."],
        ["We don't test. It's fine.", "Lab reports are confidential."])
    add("prescription", "zh",
        ["能帮我配一副中药方子吗？", "可以代煎中药吗？", "我这个症状该吃什么？", "你们有坐诊医生吗？"],
        "抱歉，本草堂只销售药食同源的滋补食材，不提供诊断、开方或代煎服务。",
        ["如有身体不适，请咨询正规医院的医生或注册中医师。"],
        ["没问题，我给你配一副，包好。", "你这个症状吃人参就行，不用看医生。"])
    add("prescription", "en",
        ["Can you make up a herbal prescription for me?", "Do you have a doctor on site?", "What should I take for my symptoms?",
         "Can you decoct herbs for me?"],
        "I'm sorry, Bencao Hall sells herbal food products only; we don't diagnose, prescribe or prepare decoctions.",
        ["For health concerns, please see a doctor or a registered TCM practitioner."],
        ["Sure, I'll prescribe something that will fix you right up.", "Just take ginseng for that, skip the doctor."])
    add("allergy", "zh",
        ["吃了以后皮肤痒是怎么回事？", "喝了花茶有点过敏怎么办？"],
        "请立即停止食用，如症状明显或持续，请尽快就医。",
        ["您可以把订单号和批次号发给我们，我们会协助跟进。"],
        ["多喝几次就习惯了，接着喝。", "那是排毒反应，说明有效。"])
    add("allergy", "en",
        ["I got an itchy rash after drinking the tea. What should I do?", "I think I'm allergic to one of your products."],
        "Please stop using it straight away and see a doctor if the symptoms are severe or don't go away.",
        ["Send us your order and batch number and we'll follow up."],
        ["Keep drinking it, you'll get used to it.", "That's just detox, it means it's working."])
    add("combine", "zh",
        ["枸杞和菊花可以一起泡吗？", "红枣和桂圆能一起煮吗？", "黄芪可以和红枣一起泡水吗？"],
        "可以的，这是很常见的日常搭配，每种取平时用量的一半左右即可。",
        ["如有基础疾病、正在服药或处于孕期，请先咨询医生。"],
        ["不能放一起，会中毒。", "随便混，放越多越好。"])
    add("combine", "en",
        ["Can I brew goji and chrysanthemum together?", "Can jujubes and longan be cooked together?", "Is it OK to mix astragalus with jujubes?"],
        "Yes, that's a very common everyday combination; just use about half the usual amount of each.",
        ["If you have a health condition, take medication or are pregnant, please ask a doctor first."],
        ["Never mix them, it's poisonous.", "Mix as much as you like, more is better."])
    return items


# ---------------------------------------------------------------------------
# Pool construction
# ---------------------------------------------------------------------------


def build_pool(rng):
    raw = []
    for p in PRODUCTS:
        raw.extend(product_items(p, rng))
    raw.extend(general_items())
    # expand each group into concrete (question, answer) variants with prefixes
    groups = OrderedDict()
    seen = set()
    for g in raw:
        variants = []
        for q in g["qs"]:
            for _ in range(2):  # up to two prefix variants per phrasing
                qq = with_prefix(q, g["lang"], rng)
                norm = qq.lower().strip()
                if norm in seen:
                    continue
                seen.add(norm)
                variants.append(qq)
        rng.shuffle(variants)
        groups.setdefault((g["key"], g["lang"]), dict(meta=g, qs=variants))
    return groups


def render_answer(meta, rng, short=False):
    lang = meta["lang"]
    core = meta["core"]
    if short:
        return core
    opener = rng.choice(ZH_OPEN if lang == "zh" else EN_OPEN)
    n_extra = rng.choice([0, 1, 1, 2]) if meta["extras"] else 0
    extras = rng.sample(meta["extras"], min(n_extra, len(meta["extras"])))
    closer = ""
    if n_extra < 2 and rng.random() < 0.2:
        closer = rng.choice(ZH_CLOSE if lang == "zh" else EN_CLOSE)
    sep = "" if lang == "zh" else " "
    return sep.join(x for x in [opener + core] + extras + [closer] if x).strip()


def render_rejected(meta, rng):
    lang = meta["lang"]
    if rng.random() < 0.45:
        return rng.choice(RUDE_ZH if lang == "zh" else RUDE_EN), "rude"
    wrong = rng.choice(meta["wrongs"])
    if rng.random() < 0.3:
        wrong = wrong + ("别再问了。" if lang == "zh" else " Don't ask again.")
    return wrong, "wrong"


class Drawer:
    """Draws unique questions, cycling over topic groups so coverage is broad."""

    def __init__(self, groups, rng):
        self.rng = rng
        self.by_lang = {"zh": [], "en": []}
        for (key, lang), g in groups.items():
            self.by_lang[lang].append(g)

    def draw(self, lang, n):
        cats = {}
        for g in self.by_lang[lang]:
            cats.setdefault(category(g["meta"]), []).append(g)
        out = []
        while len(out) < n:
            live = [c for c in cats if any(g["qs"] for g in cats[c])]
            if not live:
                raise RuntimeError(f"pool exhausted for {lang}")
            c = self.rng.choices(live, weights=[CATEGORY_WEIGHTS[c] for c in live])[0]
            g = self.rng.choice([g for g in cats[c] if g["qs"]])
            out.append((g["qs"].pop(), g["meta"]))
        return out


# Relative frequency of each kind of question in the generated data.
CATEGORY_WEIGHTS = {"shop": 28, "price": 12, "storage": 12, "brew": 12, "origin": 7, "shelf": 6,
                    "use": 6, "cure": 7, "safety": 10}


def category(meta):
    if meta["product"] is None:
        return "shop"
    return meta["topic"].split("-")[0]


SYSTEM_EN = [
    "You are Bencao Hall's English-speaking assistant. Answer briefly.",
    "You are a customer-service agent for Bencao Hall, a traditional Chinese herbal shop. Keep answers to one sentence.",
    "You work for Bencao Hall. Be polite and concise.",
]
SYSTEM_ZH = [
    "你是本草堂的在线客服，请用简洁、礼貌的中文回答。",
    "你是本草堂中药养生店的客服助手，回答要简短准确。",
    "你是本草堂的客服，请用一句话礼貌作答。",
]
SYSTEM_SAFETY = {
    "en": "You are Bencao Hall's assistant. Never claim a product cures disease; advise consulting a doctor about health conditions, pregnancy or medication.",
    "zh": "你是本草堂的客服助手。不得宣称产品能治病；涉及疾病、孕期或用药时，请建议顾客咨询医生。",
}


def pick_system(meta, rng):
    lang = meta["lang"]
    if meta["topic"].startswith(("cure", "safety")):
        return SYSTEM_SAFETY[lang]
    return rng.choice(SYSTEM_EN if lang == "en" else SYSTEM_ZH)


def langs_for(n, rng, zh_frac=0.6):
    n_zh = round(n * zh_frac)
    seq = ["zh"] * n_zh + ["en"] * (n - n_zh)
    rng.shuffle(seq)
    return seq


def draw_mixed(drawer, n, rng):
    seq = langs_for(n, rng)
    zh = drawer.draw("zh", seq.count("zh"))
    en = drawer.draw("en", seq.count("en"))
    out = []
    for lang in seq:
        out.append(zh.pop() if lang == "zh" else en.pop())
    return out


# ---------------------------------------------------------------------------
# Dataset writers
# ---------------------------------------------------------------------------


def make_sft(pairs, rng, sys_frac=0.15):
    rows = []
    n_sys = round(len(pairs) * sys_frac)
    sys_idx = set(rng.sample(range(len(pairs)), n_sys))
    for i, (q, meta) in enumerate(pairs):
        if i in sys_idx:
            rows.append({"system": pick_system(meta, rng), "instruction": q, "input": "",
                         "output": render_answer(meta, rng, short=True)})
        else:
            rows.append({"instruction": q, "input": "", "output": render_answer(meta, rng)})
    return rows


def make_dpo(pairs, rng, msg_frac=0.2):
    rows = []
    n_msg = round(len(pairs) * msg_frac)
    msg_idx = set(rng.sample(range(len(pairs)), n_msg))
    for i, (q, meta) in enumerate(pairs):
        chosen = render_answer(meta, rng, short=(i in msg_idx))
        rejected, _ = render_rejected(meta, rng)
        assert chosen != rejected
        if i in msg_idx:
            prompt = [{"role": "system", "content": pick_system(meta, rng)}, {"role": "user", "content": q}]
        else:
            prompt = q
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


FOLLOWUPS = {
    "zh": {
        "price": ["那它多少钱？", "价格是多少呢？", "一包多少钱？"],
        "storage": ["买回去怎么保存比较好？", "那应该怎么存放？", "需要放冰箱吗？"],
        "brew": ["平时怎么吃比较好？", "一次用多少合适？", "具体怎么用呢？"],
        "origin": ["是哪里产的？", "产地在哪里？"],
        "shelf": ["保质期多久？", "能放多久？"],
        "safety-preg": ["我在备孕，能吃吗？", "孕妇可以吃吗？"],
        "safety-drug": ["我平时在吃降压药，会有影响吗？", "和西药一起吃有问题吗？"],
    },
    "en": {
        "price": ["How much is it?", "And what does it cost?", "What's the price?"],
        "storage": ["How should I store it?", "Does it need refrigerating?", "And how do I keep it fresh?"],
        "brew": ["How do I use it?", "How much should I use at a time?", "What's the best way to prepare it?"],
        "origin": ["Where is it from?", "Where do you source it?"],
        "shelf": ["How long does it keep?", "What's the shelf life?"],
        "safety-preg": ["I'm pregnant. Is it OK for me?", "Is it safe during pregnancy?"],
        "safety-drug": ["I'm on blood pressure pills. Is that a problem?", "Can I take it with my medication?"],
    },
}
OPENERS = {
    "zh": [("我想了解一下{n}。", "好的，"), ("你们有卖{full}吗？", "有的，"), ("{n}有货吗？", "有货的，"),
           ("我想买点{n}。", "好的，")],
    "en": [("I'm interested in your {en}.", "Great choice! "), ("Do you sell {en}?", "Yes, we do! "),
           ("Do you have {en} in stock?", "Yes, we have stock! "), ("I'd like to buy some {en}.", "Happy to help! ")],
}
OPENER_ANS = {
    "zh": "我们的{full}产自{origin_zh}，{spec_zh}，售价 ¥{price}。",
    "en": "Our {full_en} {verb} from {origin_en}, {spec_art} {spec_en} for ¥{price}.",
}
GENERAL_FOLLOW = {
    "zh": [("满多少包邮？", "shop:free-shipping"), ("下单后多久发货？", "shop:dispatch"), ("积分怎么用？", "shop:points"),
           ("拆开不喜欢能退吗？", "shop:returns")],
    "en": [("Do you offer free shipping?", "shop:free-shipping"), ("How soon will it ship?", "shop:dispatch"),
           ("Can I use my points?", "shop:points"), ("Can I return it if I don't like it?", "shop:returns")],
}


def make_chat(drawer, groups, rng, n_single=40, n_multi=20):
    metas = {(k, lang): g["meta"] for (k, lang), g in groups.items()}
    rows = []
    for q, meta in draw_mixed(drawer, n_single, rng):
        msgs = []
        short = rng.random() < 0.3
        if short:
            msgs.append({"role": "system", "content": pick_system(meta, rng)})
        msgs.append({"role": "user", "content": q})
        msgs.append({"role": "assistant", "content": render_answer(meta, rng, short=short)})
        rows.append({"messages": msgs})
    multi_langs = langs_for(n_multi, rng)
    prods = PRODUCTS * 2
    rng.shuffle(prods)
    for j, lang in enumerate(multi_langs):
        p = prods[j]
        msgs = []
        if rng.random() < 0.4:
            msgs.append({"role": "system", "content": rng.choice(SYSTEM_ZH if lang == "zh" else SYSTEM_EN)})
        op, ack = rng.choice(OPENERS[lang])
        op = op.format(n=p["zh"], full=p["full_zh"], en=p["en"])
        ans = ack + OPENER_ANS[lang].format(full=p["full_zh"], origin_zh=p["origin_zh"], spec_zh=p["spec_zh"], price=p["price"],
                                      full_en=p["full_en"], verb="come" if p["plural"] else "comes",
                                      origin_en=p["origin_en"], spec_art="in a", spec_en=p["spec_en"])
        msgs += [{"role": "user", "content": op}, {"role": "assistant", "content": ans}]
        n_follow = rng.choice([1, 2])
        topics = rng.sample(["storage", "brew", "shelf", "safety-preg", "safety-drug", "general"], n_follow)
        for t in topics:
            if t == "general":
                fq, key = rng.choice(GENERAL_FOLLOW[lang])
                meta = metas[(key, lang)]
            else:
                fq = rng.choice(FOLLOWUPS[lang][t])
                meta = metas[(f"{p['key']}:{t}", lang)]
            msgs += [{"role": "user", "content": fq}, {"role": "assistant", "content": render_answer(meta, rng)}]
        rows.append({"messages": msgs})
    rng.shuffle(rows)
    return rows


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    groups = build_pool(rng)
    drawer = Drawer(groups, rng)
    # Every split draws from one shared pool without replacement, so no
    # question string appears in two files.
    sft_train = make_sft(draw_mixed(drawer, 360, rng), rng)
    sft_val = make_sft(draw_mixed(drawer, 40, rng), rng)
    dpo_train = make_dpo(draw_mixed(drawer, 300, rng), rng)
    dpo_val = make_dpo(draw_mixed(drawer, 40, rng), rng)
    chat = make_chat(drawer, groups, rng)

    files = {
        "sft_train.jsonl": sft_train, "sft_val.jsonl": sft_val, "sft_chat.jsonl": chat,
        "dpo_train.jsonl": dpo_train, "dpo_val.jsonl": dpo_val,
    }
    for name, rows in files.items():
        write_jsonl(out / name, rows)
        print(f"{name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
