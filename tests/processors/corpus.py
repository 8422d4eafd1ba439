"""Synthetic labelled articles in Arabic, English and Russian for processor tests and the benchmark.

Each article is neutral filler (city news, weather, culture) plus one sentence per expected topic,
so its expected topics are known by construction. Place names and numbers vary per article, so
no two articles are near-duplicates of each other. Texts written for these tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from newswatch.schemas import Article

TOPICS = ("air_defense_system", "arms_deal", "ministerial_visit")
SEED_ARTICLE = Path(__file__).resolve().parents[2] / "seeds" / "articles" / "rt-arabic-egypt-russia-2plus2.txt"

CITIES = {
    "en": ["Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Hanoi", "Dakar", "Perth", "Lima", "Bergen",
           "Accra", "Porto", "Tbilisi", "Mombasa", "Cusco", "Gdansk"],
    "ru": ["Казани", "Самаре", "Томске", "Пскове", "Ярославле", "Иркутске", "Твери", "Калуге", "Омске",
           "Сочи", "Перми", "Туле", "Мурманске", "Вологде", "Рязани", "Смоленске"],
    "ar": ["الإسكندرية", "صفاقس", "إربد", "طنجة", "وهران", "الموصل", "بنغازي", "حمص", "مراكش", "أسوان",
           "الزرقاء", "قسنطينة", "صلالة", "المنامة", "أغادير", "طرابلس"],
}

FILLER = {
    "en": [
        "Residents of {city} woke to heavy fog on Tuesday morning, and the port closed for {n} hours.",
        "The museum in {city} opened a new wing with {n} paintings from private collections.",
        "Local farmers near {city} expect a late harvest after a cold and wet spring this year.",
        "A marathon through the old town of {city} drew {n} runners despite the rain.",
        "The university in {city} said enrolment rose by {n} percent compared with last year.",
        "Bakers in {city} say the price of flour has doubled since the winter.",
        "A new tram line in {city} will connect the railway station with the harbour.",
        "Heat warnings were issued for {city}, where temperatures may reach {n} degrees.",
        "The central library of {city} extended its opening times on weekends.",
        "Fishermen from {city} reported the best season for sardines in {n} years.",
        "Film lovers queued outside the cinema in {city} for the festival premiere.",
        "A storm damaged {n} roofs in the suburbs of {city} overnight, officials said.",
    ],
    "ru": [
        "В {city} во вторник выпал первый снег, движение на дорогах затруднено.",
        "Городской музей в {city} открыл выставку из {n} картин местных художников.",
        "Фермеры под {city} ожидают поздний урожай из-за холодной весны.",
        "В {city} прошёл городской марафон, в котором участвовали {n} бегунов.",
        "Университет в {city} сообщил о росте числа студентов на {n} процентов.",
        "В {city} начали ремонт старого моста через реку.",
        "Синоптики обещают в {city} до {n} градусов тепла в выходные.",
        "Библиотека в {city} будет работать по субботам и воскресеньям.",
        "В {city} открылся новый парк с детскими площадками и фонтанами.",
        "Рыбаки в {city} рассказали о хорошем улове этой осенью.",
        "Жители {city} выбрали новое название для главной площади.",
        "Трамвайная линия в {city} свяжет вокзал с центром города.",
    ],
    "ar": [
        "استيقظ سكان {city} على ضباب كثيف صباح الثلاثاء وأغلق الميناء لمدة {n} ساعات.",
        "افتتح متحف {city} جناحا جديدا يضم {n} لوحة من مجموعات خاصة.",
        "يتوقع المزارعون في {city} موسما متأخرا بعد ربيع بارد وممطر.",
        "شارك {n} عداء في ماراثون المدينة القديمة في {city} رغم المطر.",
        "أعلنت جامعة {city} أن عدد الطلاب ارتفع بنسبة {n} في المئة.",
        "يقول الخبازون في {city} إن سعر الدقيق تضاعف منذ الشتاء.",
        "سيربط خط الترام الجديد في {city} محطة القطار بالمرفأ.",
        "حذرت الأرصاد من موجة حر في {city} قد تصل فيها الحرارة إلى {n} درجة.",
        "مددت المكتبة العامة في {city} ساعات العمل في عطلة نهاية الأسبوع.",
        "أفاد صيادو {city} بأن موسم السردين هذا العام هو الأفضل منذ {n} عاما.",
        "اصطف محبو السينما أمام دار العرض في {city} لمشاهدة العرض الأول.",
        "ألحقت عاصفة أضرارا بـ{n} منزلا في ضواحي {city} خلال الليل.",
    ],
}

TOPIC_SENTENCES = {
    "air_defense_system": {
        "en": ["Engineers moved an S-400 battery to a new position outside {city} this week.",
               "The army put its Patriot missile batteries near {city} on alert after radar warnings.",
               "A THAAD radar unit was spotted on a hill near {city} by local photographers."],
        "ru": ["Расчёты ЗРС С-400 заступили на боевое дежурство под {city}.",
               "Зенитный ракетный комплекс «Панцирь-С1» развернули у аэродрома возле {city}.",
               "Средства ПВО отразили ночной налёт беспилотников на {city}."],
        "ar": ["نشر الجيش منظومة إس-400 قرب {city} هذا الأسبوع.",
               "رفعت وحدات الدفاع الجوي حالة التأهب حول {city} بعد رصد أهداف مجهولة.",
               "شوهدت بطاريات باتريوت على تلة قرب {city} وفق مصورين محليين."],
    },
    "arms_deal": {
        "en": ["The government signed an arms deal worth {n} million dollars with a European shipyard.",
               "Officials confirmed a weapons contract for {n} armoured vehicles built abroad.",
               "Parliament debated the arms sale of {n} howitzers to a neighbouring state."],
        "ru": ["Правительство заключило контракт на поставку {n} танков и бронемашин.",
               "Стороны обсуждают поставки вооружений на сумму {n} миллионов долларов.",
               "Экспорт вооружений в этом году вырос на {n} процентов, сообщили в ведомстве."],
        "ar": ["وقعت الحكومة صفقة أسلحة بقيمة {n} مليون دولار مع شركة أوروبية.",
               "أكد مسؤولون عقد تسليح لشراء {n} مدرعة من الخارج.",
               "ناقش البرلمان صفقة مقاتلات جديدة تشمل {n} طائرة."],
    },
    "ministerial_visit": {
        "en": ["The foreign minister arrived in {city} for talks with her counterpart.",
               "The defence minister visited {city} and met local commanders on Monday.",
               "Foreign and defence ministers of both countries held 2+2 talks in {city}."],
        "ru": ["Министр иностранных дел прибыл в {city} для переговоров с коллегой.",
               "Министр обороны посетил войска в {city} и провёл совещание.",
               "Министры иностранных дел и обороны двух стран провели переговоры в формате «2+2»."],
        "ar": ["وصل وزير الخارجية إلى {city} لإجراء محادثات مع نظيره.",
               "زار وزير الدفاع {city} والتقى قادة الوحدات يوم الاثنين.",
               "عقد وزيرا الخارجية والدفاع في البلدين محادثات بصيغة 2+2 في {city}."],
    },
}

TITLES = {
    "en": "News from {city}: report {n}",
    "ru": "Новости: {city}, сообщение {n}",
    "ar": "أخبار {city}: تقرير {n}",
}

# The label sets drawn, with weights: most news raises no topic.
LABEL_SETS = [((), 55), (("air_defense_system",), 10), (("arms_deal",), 10), (("ministerial_visit",), 10),
              (("air_defense_system", "ministerial_visit"), 5), (("arms_deal", "ministerial_visit"), 5),
              (("air_defense_system", "arms_deal", "ministerial_visit"), 5)]

BASE_TIME = datetime(2026, 2, 13, 6, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Labelled:
    article: Article
    topics: tuple[str, ...]


def labelled_articles(count: int, *, seed: int = 7, id_prefix: str = "corpus", filler_sentences: int = 6
                      ) -> list[Labelled]:
    """`count` articles cycling through ar/en/ru, each with its expected topics."""
    rng = random.Random(seed)
    sets, weights = zip(*LABEL_SETS)
    out = []
    for index in range(count):
        lang = ("ar", "en", "ru")[index % 3]
        labels = rng.choices(sets, weights)[0]
        cities = CITIES[lang]

        def fill(template: str) -> str:
            return template.format(city=rng.choice(cities), n=rng.randint(2, 9999))

        filler = [fill(s) for s in rng.sample(FILLER[lang], filler_sentences)]
        # Topic sentences go between filler sentences, never next to each other, so one topic's
        # words do not sit within another topic's proximity window by accident.
        for position, topic in enumerate(labels):
            filler.insert(1 + position * 2, fill(rng.choice(TOPIC_SENTENCES[topic][lang])))
        text = " ".join(filler)
        article = Article(id=f"{id_prefix}-{index:06d}", url=f"https://news.example.test/{id_prefix}/{index}",
                          title=fill(TITLES[lang]), text=text, lang=lang,
                          published_at=BASE_TIME + timedelta(seconds=index),
                          fetched_at=BASE_TIME + timedelta(seconds=index, milliseconds=500),
                          feed={"url": f"https://feed{index % 7}.example.test/{lang}.xml",
                                "title": f"Feed {index % 7}"},
                          source=f"Publisher {index % 7}")
        out.append(Labelled(article, tuple(sorted(labels))))
    return out


def seed_article(article_id: str = "seed-rt-arabic-2plus2") -> Article:
    """The RT Arabic article about the Egypt-Russia 2+2 talks (raises all three topics)."""
    text = SEED_ARTICLE.read_text(encoding="utf-8").strip()
    title, _, body = text.partition("\n")
    return Article(id=article_id, url="https://arabic.rt.example.test/world/2plus2", title=title, text=body,
                   lang="ar", published_at=BASE_TIME, fetched_at=BASE_TIME, source="RT Arabic",
                   feed={"url": "https://arabic.rt.example.test/rss", "title": "RT Arabic"})
