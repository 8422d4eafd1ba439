"""The default topic packs on the seed article, the labelled set and the held-out set written blind
(F1 >= 0.9 per topic and language on both), and on hard negatives."""

import json

import pytest

from processors.detection import detect
from processors.detection.evaluate import ALL, score_labelled
from tests.processors.detection.conftest import DATA, REPO, Doc

SEED_ARTICLE = REPO / "seeds" / "articles" / "rt-arabic-egypt-russia-2plus2.txt"


@pytest.fixture(scope="module")
def seed_hits(seed_watchlist):
    text = SEED_ARTICLE.read_text(encoding="utf-8")
    return text, {hit.topic: hit for hit in detect(Doc(text=text, lang="ar"), seed_watchlist)}


@pytest.mark.parametrize("topic, expected_terms", [
    ("ministerial_visit", {"2+2", "وزيرا الخارجية والدفاع", "زيارة"}),
    ("air_defense_system", {"اس-300", "اس-400", "أنظمة دفاع جوي"}),
    ("arms_deal", {"صفقة عسكرية"}),
])
def test_seed_article_raises_every_topic_with_evidence_on_the_right_words(seed_hits, topic, expected_terms):
    text, hits = seed_hits
    hit = hits[topic]
    assert 0 < hit.score <= 1
    found = set()
    for evidence in hit.evidence:
        assert evidence.field == "text"
        assert text[evidence.start:evidence.end] == evidence.term
        found.add(evidence.term)
    assert expected_terms <= found


def _labelled(name="labelled.jsonl"):
    with (DATA / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# labelled.jsonl was written with the packs; heldout.jsonl was written before reading them
# (see docs/detection.md, "How the packs are evaluated").
LABELLED_SETS = ["labelled.jsonl", "heldout.jsonl"]


@pytest.mark.parametrize("name", LABELLED_SETS)
def test_labelled_set_is_big_and_balanced(name):
    rows = _labelled(name)
    assert len({r["id"] for r in rows}) == len(rows) >= 150
    for lang in ("ar", "en", "ru"):
        mine = [r for r in rows if r["lang"] == lang]
        assert len(mine) >= 45
        for topic in ("arms_deal", "air_defense_system", "ministerial_visit"):
            assert sum(topic in r["labels"] for r in mine) >= 10
        assert sum(not r["labels"] for r in mine) >= 15  # hard negatives


def _score(watchlist, name):
    results = []
    for row in _labelled(name):
        article = Doc(title=row["title"], text=row["text"], lang=row["lang"])
        results.append((row["lang"], frozenset(row["labels"]),
                        frozenset(h.topic for h in detect(article, watchlist))))
    return score_labelled(results, [t.id for t in watchlist.topics])


@pytest.mark.parametrize("name", LABELLED_SETS)
def test_f1_is_at_least_0_9_per_topic_and_language(seed_watchlist, name):
    table = _score(seed_watchlist, name)
    low = {key: round(cell.f1, 3) for key, cell in table.items() if cell.f1 < 0.9}
    assert low == {}
    assert table[(ALL, ALL)].f1 >= 0.9


def test_longform_set_is_full_length_and_balanced():
    rows = _labelled("longform.jsonl")
    assert len({r["id"] for r in rows}) == len(rows) >= 60
    for lang in ("ar", "en", "ru"):
        mine = [r for r in rows if r["lang"] == lang]
        assert len(mine) >= 20
        assert all(len(r["text"].split()) >= 300 for r in mine)
        assert all(r["text"].count("\n\n") >= 5 for r in mine)  # paragraphs, not a single blurb
        for topic in ("arms_deal", "air_defense_system", "ministerial_visit"):
            assert sum(topic in r["labels"] for r in mine) >= 5
        assert sum(not r["labels"] for r in mine) >= 0.35 * len(mine)  # near-miss negatives


# longform.jsonl: 63 full-length articles written blind (see longform.md). The packs reached
# 1.000 on it after the long-text fixes; it has been used to fix them since, so the floor
# asserted here is lower, the level they must never fall below on long copy.
LONGFORM_FLOOR = 0.95


def test_longform_f1_per_topic_and_language(seed_watchlist):
    table = _score(seed_watchlist, "longform.jsonl")
    low = {key: round(cell.f1, 3) for key, cell in table.items() if cell.f1 < LONGFORM_FLOOR}
    assert low == {}
    assert {lang for _, lang in table} >= {"ar", "en", "ru"}


# fresh.jsonl: 150 texts written blind on 2026-11-29 (see fresh.md). Blind, the packs made an
# overall F1 of 0.954 (lowest cell: arms_deal in English, 0.867); the general patterns behind its
# misses were then fixed, so like the long-form set it is now a floor, not an estimate.
FRESH_FLOOR = 0.9


def test_fresh_set_is_balanced_and_f1_stays_above_its_floor(seed_watchlist):
    rows = _labelled("fresh.jsonl")
    assert len({r["id"] for r in rows}) == len(rows) == 150
    for lang in ("ar", "en", "ru"):
        mine = [r for r in rows if r["lang"] == lang]
        for topic in ("arms_deal", "air_defense_system", "ministerial_visit"):
            assert sum(topic in r["labels"] for r in mine) >= 9
        assert sum(not r["labels"] for r in mine) >= 20
    table = _score(seed_watchlist, "fresh.jsonl")
    low = {key: round(cell.f1, 3) for key, cell in table.items() if cell.f1 < FRESH_FLOOR}
    assert low == {}
    assert table[(ALL, ALL)].f1 >= 0.95


@pytest.mark.parametrize("title, text, lang", [
    ("Mercedes S400 review", "The Mercedes-Benz S 400 d is a comfortable limousine.", "en"),
    ("Patriots win", "The New England Patriots won the Super Bowl after a late touchdown.", "en"),
    ("Tor Browser 14", "The Tor Browser now blocks more trackers; the Tor network keeps growing.", "en"),
    ("Civil defence drill", "Civil defence sirens were tested across the city.", "en"),
    ("Health minister visit", "The health minister visited a clinic in Cairo.", "en"),
    ("Transfer news", "The club agreed a deal with the striker, who joins after the transfer window opens.", "en"),
    ("وزير الصحة يزور المستشفى", "زار وزير الصحة المستشفى الجامعي.", "ar"),
    ("مرسيدس اس 400", "سيارة مرسيدس اس 400 الجديدة فاخرة.", "ar"),
    ("Тор-браузер", "Браузер Tor получил обновление безопасности.", "ru"),
    ("Министр здравоохранения посетил Казань", "Министр здравоохранения провел встречу с врачами.", "ru"),
    # words the packs learnt from the held-out set, in senses that must stay quiet
    ("Cable deal", "The group signed a deal to supply and lay submarine cables between the islands.", "en"),
    ("Disposal", "The bank completed the sale of its consumer and retail arms to a fund.", "en"),
    ("Chip race", "Chipmakers are locked in an arms race to supply accelerators.", "en"),
    ("Fireworks seized", "Police seized missile rockets and firecrackers sold without a licence.", "en"),
    ("Minister under fire", "The foreign minister received criticism over the evacuation.", "en"),
    ("الأهلي يتعاقد مع مدافع برازيلي", "أعلن الفريق التعاقد مع المدافع البرازيلي لثلاثة مواسم.", "ar"),
    ("عقد لتطوير منظومة الفوترة", "وقعت شركة الاتصالات عقدا لتطوير منظومة الفوترة الإلكترونية.", "ar"),
    ("ألعاب نارية", "ضبطت الشرطة صواريخ الألعاب النارية المعدة للبيع.", "ar"),
    ("Глава МИД дал интервью", "Министр иностранных дел обсудил в эфире новые санкции.", "ru"),
    ("Фейерверки", "Полиция изъяла петарды и ракеты для фейерверков, продававшиеся без сертификатов.", "ru"),
    ("Buk launches budget phone", "The Buk smartphone has a large battery and a 120 Hz screen.", "en"),
    ("Patriots sign cornerback", "The Patriots signed the cornerback to a $40m contract after six interceptions.", "en"),
    ("وزير الدفاع يأمر بتكثيف البحث", "أمر وزير الدفاع بتكثيف عمليات البحث عن المفقودين في البحر.", "ar"),
    ("وزير الخارجية يفتتح مركزا", "افتتح وزير الخارجية مركز البحث والدراسات التابع للوزارة.", "ar"),
    ("Plan criticised", "The foreign minister's plan was met with criticism from lawmakers.", "en"),
    ("Госсекретарь Ватикана посетил Киев", "Госсекретарь Ватикана провел переговоры в Киеве.", "ru"),
    # "Iron Dome" as a metaphor (the fresh set's false alarms, in other words)
    ("An Iron Dome for your inbox", "The mail provider calls its new spam filter an Iron Dome that "
     "blocks phishing before it reaches customers, and it will transfer old accounts for free.", "en"),
    ("حارس المرمى القبة الحديدية", "لقبت الجماهير حارس المرمى بالقبة الحديدية بعد أن حافظ على "
     "نظافة شباكه في عشر مباريات متتالية.", "ar"),
    ("«Железный купол» для бюджета", "Минфин назвал резервный фонд «железным куполом» бюджета, "
     "который защитит расходы от падения цен на нефть.", "ru"),
    ("Reserves", "The central bank's reserves act as an Iron Dome for Israel's economy.", "en"),
    ("Final", "Goalkeeper Rafael was an iron dome in the final.", "en"),
    # Iron Dome's own context words must not count for the other ambiguous names
    ("Визит в Иерусалим", "Визит стал настоящим триумфом израильской дипломатии, заявили в МИД.", "ru"),
    ("Obituary", "He was a true patriot and a proud Israeli, his family said.", "en"),
    ("Rout", "The Patriots battered the Bills 38-3 on Sunday.", "en"),
    ("Results", "Arrow Electronics said its battery unit in Israel grew.", "en"),
    ("البورصة", "ارتفع السهم بنسبة 3% بعد توقيع اتفاق مع إسرائيل.", "ar"),
])
def test_hard_negatives_stay_quiet(seed_watchlist, title, text, lang):
    assert detect(Doc(title=title, text=text, lang=lang), seed_watchlist) == ()


@pytest.mark.parametrize("title, text, lang", [
    ("С-500 «Прометей» поставлен на вооружение", "Комплекс С-500 поступил в войска.", "ru"),
    ("S-500 enters service", "The first S-500 system has entered service near Moscow.", "en"),
    ("China shows HQ-9 at Dubai Airshow", "The export version of the HQ-9 was on show.", "en"),
])
def test_air_defence_news_without_a_transaction_is_no_arms_deal(seed_watchlist, title, text, lang):
    topics = {hit.topic for hit in detect(Doc(title=title, text=text, lang=lang), seed_watchlist)}
    assert topics == {"air_defense_system"}


@pytest.mark.parametrize("topic, title, text, lang", [
    # one case per general pattern the held-out set taught the packs
    ("arms_deal", "تسلم غواصتين", "تسلمت البحرية غواصتين جديدتين بموجب عقد مع ألمانيا.", "ar"),
    ("arms_deal", "اقتناء طائرات", "أبرمت الوزارة اتفاقية لاقتناء طائرات تدريب من إيطاليا.", "ar"),
    ("arms_deal", "Казахстан приобрёл БТР", "Казахстан приобрёл партию бронетранспортёров у Турции.", "ru"),
    ("arms_deal", "Trainer aircraft export", "Embraer will export 12 light attack aircraft to Paraguay.", "en"),
    ("arms_deal", "Patriot purchase", "Switzerland signed a contract to buy five Patriot fire units.", "en"),
    ("arms_deal", "Пакет военной помощи", "США объявили новый пакет военной помощи Украине.", "ru"),
    ("ministerial_visit", "وزيرا الدفاع يبحثان التعاون", "بحث وزيرا دفاع البلدين في أنقرة التعاون العسكري.", "ar"),
    ("ministerial_visit", "Wang Yi to host counterpart", "Foreign Minister Wang Yi will receive Iran's top diplomat.", "en"),
    ("ministerial_visit", "Глава египетской дипломатии посетит Москву", "Визит запланирован на среду.", "ru"),
    ("ministerial_visit", "Armed forces minister in Abu Dhabi",
     "The Minister for the Armed Forces held talks in Abu Dhabi.", "en"),
    ("air_defense_system", "Новые НАСАМС", "Украина развернула НАСАМС у Киева.", "ru"),
    ("air_defense_system", "الدفاعات الصاروخية", "تصدت الدفاعات الصاروخية لهجوم بالمسيرات.", "ar"),
    # and the fresh set: possessive endings, object pronouns, "shipped", отгрузил, Iron Dome in context
    ("air_defense_system", "دفاعاتها الجوية", "قالت الوزارة إن دفاعاتها الجوية تصدت لهجوم ليلي.", "ar"),
    ("arms_deal", "منظومات تسلمتها", "نشرت القاهرة منظومات إس-300 التي تسلمتها من روسيا قبل سنوات.", "ar"),
    ("arms_deal", "Howitzers shipped", "Seoul shipped 40 self-propelled howitzers to Warsaw last month.", "en"),
    ("arms_deal", "Отгрузка «Панцирей»", "Завод отгрузил заказчику партию зенитных ракет к комплексам.", "ru"),
    ("air_defense_system", "Iron Dome in action", "Iron Dome batteries fired dozens of interceptors over Haifa.", "en"),
    ("air_defense_system", "Tel Aviv", "The Iron Dome system was activated over Tel Aviv overnight.", "en"),
    ("air_defense_system", "Funding", "Congress approved $1 billion to replenish Iron Dome.", "en"),
    ("arms_deal", "Funding", "The Pentagon signed a contract to buy Iron Dome batteries for the Marines.", "en"),
    ("air_defense_system", "Ночь на севере", "«Железный купол» работал всю ночь, сообщили в ЦАХАЛ.", "ru"),
])
def test_general_patterns_from_the_held_out_set_fire(seed_watchlist, topic, title, text, lang):
    topics = {hit.topic for hit in detect(Doc(title=title, text=text, lang=lang), seed_watchlist)}
    assert topic in topics


_FILLER = {
    "en": "The statement gave no further details about the timetable or the costs involved. ",
    "ar": "ولم يقدم البيان مزيدا من التفاصيل حول الجدول الزمني أو التكاليف المترتبة على ذلك. ",
    "ru": "Другие подробности о сроках и стоимости в сообщении не приводятся. ",
}


def _long(lang, *paragraphs):
    """An article whose paragraphs are 60+ words apart, as in wire copy: no window spans two."""
    return "\n\n".join(p + " " + _FILLER[lang] * 5 for p in paragraphs)


@pytest.mark.parametrize("title, text, lang", [
    # the giveaway is paragraphs away from the ambiguous word
    ("Mercedes-Benz S400d review", _long("en", "We drove the car for a week.", "The S400d floats over bumps.",
                                         "The S400 also has a smart voice assistant."), "en"),
    ("مرسيدس تطلق الفئة إس الجديدة", _long("ar", "أطلقت الشركة السيارة الجديدة في جدة.",
                                          "وتتوفر بمحرك إس 400 الهجين."), "ar"),
    ("Patriots win in overtime", _long("en", "Maye threw a touchdown pass in overtime.",
                                       "He had two touchdowns and an interception. The Patriots drove 75 yards."), "en"),
    # a minister listed as present at a head of state's meeting, or in his delegation
    ("President receives envoy", _long("en", "The president received the Chinese envoy on Monday.",
                                       "Also present at the meeting were the foreign minister and the ambassador."), "en"),
    ("الرئيس يستقبل المبعوث", _long("ar", "استقبل الرئيس اليوم المبعوث الصيني.",
                                    "حضر اللقاء وزير الخارجية والمغتربين والسفير الصيني."), "ar"),
    # negated supply, civil helicopters, service names, militia disarmament, gun shops
    ("Beijing denies role", "Beijing says it does not supply weapons to either side.", "en"),
    ("Пекин отвергает обвинения", "В Пекине подчеркивают, что не поставляет летальное оружие ни одной из сторон.", "ru"),
    ("Санавиация", "Отделение санитарной авиации в этом году получило два новых вертолета.", "ru"),
    ("Учения ВВС", "Военно-воздушные силы и войска противовоздушной обороны провели учения летчиков.", "ru"),
    ("خطة حصر السلاح", "تشمل خطة الجيش لحصر السلاح بيد الدولة تسليم الأسلحة الثقيلة والصواريخ.", "ar"),
    ("Охотничий магазин", "Прокуратура направила в суд дело о продаже оружия без лицензии в охотничьем магазине.", "ru"),
    # deputies and assistants are not the minister
    ("Рябков провел консультации", "Заместитель министра иностранных дел Сергей Рябков провел консультации в Женеве.", "ru"),
    ("Deputy FM in Oslo", "Deputy Foreign Minister Majid Takht-Ravanchi arrived in Oslo for talks.", "en"),
    ("نائب وزير الخارجية يلتقي السفير", "التقى نائب وزير الخارجية السفير الياباني وبحث معه العلاقات.", "ar"),
    # Shoigu travels as Security Council secretary; "патриот" is also the common noun
    ("Шойгу прибыл в Пхеньян", "Секретарь Совбеза Сергей Шойгу прибыл в Пхеньян и провел встречу.", "ru"),
    ("Shoigu in Tehran", "Security Council Secretary Sergei Shoigu met Iranian officials in Tehran.", "en"),
    ("Памяти земляка", "Настоящий патриот, он погиб, когда ракета попала в его дом в Белгороде.", "ru"),
    ("الرئيس يستقبل وفدا", "استقبل الرئيس وفدا من رجال الأعمال بحضور وزير الخارجية ووزير الاقتصاد.", "ar"),
    ("Президент принял делегацию", "Президент принял делегацию бизнесменов в присутствии министра иностранных дел.", "ru"),
    # a minister announcing a head of state's visit is not visiting
    ("Putin to visit India", "Foreign Minister Sergei Lavrov said President Putin's visit to India would be in December.", "en"),
    ("Визит в Индию", "Министр иностранных дел Сергей Лавров заявил, что визит президента в Индию состоится в декабре.", "ru"),
    ("زيارة الرئيس", "أعلن وزير الخارجية أن زيارة الرئيس إلى الجزائر ستتم الشهر المقبل.", "ar"),
    ("IDEX opens", "IDEX opened in Abu Dhabi with 1,500 exhibitors showing tanks, drones and missiles.", "en"),
    ("وزير الدفاع يرعى حفل تخريج", "رعى وزير الدفاع حفل تخريج دفعة جديدة من الكلية العسكرية، بحضور كبار الضباط.", "ar"),
    # storage and think tanks, "ammunition to critics", gym apparatus, video games
    ("Aramco storage", "Aramco signed a contract to construct crude oil storage tanks at Ras Tanura.", "en"),
    ("Think tanks", "The deal was criticised by several think tanks in Washington.", "en"),
    ("Critics", "The trade deal gave fresh ammunition to critics of the government.", "en"),
    ("Школьный спортзал", "Администрация закупила спортивные снаряды и тренажеры для школьного спортзала.", "ru"),
    ("World of Tanks", "The maker of World of Tanks agreed a deal to sell its studio.", "en"),
    # soldiers' contracts, "held (a press conference)" and "decades" are no arms contracts
    ("Набор добровольцев", "Более 500 добровольцев подписали контракт с Министерством обороны и получили оружие.", "ru"),
    ("مؤتمر صحفي", "عقد المتحدث باسم الجيش مؤتمرا صحفيا عرض فيه بقايا الصواريخ التي سقطت منذ عقود.", "ar"),
])
def test_long_text_near_misses_stay_quiet(seed_watchlist, title, text, lang):
    assert detect(Doc(title=title, text=text, lang=lang), seed_watchlist) == ()


@pytest.mark.parametrize("topic, title, text, lang", [
    ("arms_deal", "الدفاعات السورية", _long("ar", "تصدت الدفاعات الجوية لصواريخ معادية.",
                                          "وكانت موسكو قد سلمت دمشق منظومة إس-300 عام 2018."), "ar"),
    ("arms_deal", "Russia, Indonesia talks", "The ministers discussed military-technical cooperation.", "en"),
    # phone talks are a call now, not a visit (issue 16; test_a_call_is_not_a_visit checks the visit stays quiet)
    ("ministerial_call", "Лавров и Рубио", "Министр иностранных дел Сергей Лавров провел телефонный разговор с Рубио.", "ru"),
    ("ministerial_call", "اتصال هاتفي", "أجرى وزير الخارجية اتصالا هاتفيا مع وزير خارجية فرنسا.", "ar"),
    ("ministerial_call", "Rubio calls Saudi counterpart",
     "The Secretary of State held a phone call with the Saudi foreign minister.", "en"),
    # a trade noun opening a long sentence whose weapon comes at the end
    ("arms_deal", "Norway expands armoured forces", "The contract, which the defence ministry signed on Tuesday "
     "with the manufacturer in Munich after two years of talks, covers 54 new battle tanks.", "en"),
    ("arms_deal", "Армия Сербии", "Контракт, который министерство подписало во вторник с производителем после "
     "двухлетних консультаций, предусматривает 12 истребителей и запасные части.", "ru"),
    ("ministerial_visit", "Lavrov meets Iran's deputy", "Foreign Minister Sergei Lavrov met Iran's deputy "
     "foreign minister in Moscow.", "en"),
    ("ministerial_visit", "Wang Yi prepares visit", "Foreign Minister Wang Yi arrived in Moscow to prepare a "
     "state visit by President Xi Jinping.", "en"),
    ("ministerial_visit", "وزير الخارجية يصل", "وصل وزير الخارجية إلى الجزائر للتحضير لزيارة الرئيس.", "ar"),
    ("ministerial_visit", "وزير الدفاع يتفقد الوحدات", "تفقد وزير الدفاع الوحدات المنتشرة على الحدود.", "ar"),
    ("ministerial_visit", "Белоусов проинспектировал", "Министр обороны Андрей Белоусов проинспектировал группировку.", "ru"),
    ("arms_deal", "صفقات آيدكس", "أعلن المتحدث باسم معرض آيدكس عن صفقات بقيمة 5 مليارات درهم مع شركات دولية.", "ar"),
    ("arms_deal", "IDEX deals", "The armed forces announced deals worth 8 billion dirhams on the third day of IDEX.", "en"),
    # the vetoes stay narrow: real deals using the same words still fire
    ("arms_deal", "Ammunition for Kyiv", "Germany will deliver ammunition to Ukraine under a new contract.", "en"),
    ("arms_deal", "Вертолеты России", "Холдинг заключил контракты на поставку военных и гражданских вертолетов.", "ru"),
    ("arms_deal", "С-400 для Турции", "Турция получила комплексы С-400 по контракту с Россией.", "ru"),
    ("arms_deal", "Poland orders tanks", "Poland ordered 180 more tanks from South Korea.", "en"),
    ("air_defense_system", "«Пэтриот» на Украине", "Два дивизиона «Пэтриот» сбили ракеты над Киевом.", "ru"),
    # the meeting before "also present" still counts
    ("ministerial_visit", "FM meets counterpart", "The foreign minister met his Jordanian counterpart in Amman. "
     "Also present were the two ambassadors.", "en"),
    ("ministerial_visit", "وزير الخارجية يلتقي نظيره", "التقى وزير الخارجية نظيره الأردني. حضر اللقاء السفير.", "ar"),
    ("ministerial_visit", "توقيع اتفاقيات", "وقع الجانبان عدة اتفاقيات بحضور الرئيسين، ثم التقى وزير الخارجية "
     "نظيره لبحث الملفات الإقليمية.", "ar"),
    # a real S-400 or Patriot story without car or sports giveaways still fires
    ("air_defense_system", "India receives S-400", _long("en", "India received the fourth S-400 regiment.",
                                                         "The delivery completes most of the contract."), "en"),
    ("arms_deal", "India receives S-400", "Russia will deliver the last two S-400 regiments to India next year.", "en"),
])
def test_long_text_patterns_fire(seed_watchlist, topic, title, text, lang):
    topics = {hit.topic for hit in detect(Doc(title=title, text=text, lang=lang), seed_watchlist)}
    assert topic in topics
