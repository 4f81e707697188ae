"""Generated multi-turn dialogues with the mess real chat logs carry: markers, HTML, emoji, other scripts."""

from __future__ import annotations

import random

WORDS = (
    "i you we it the a an and or but so to of in on for with at by from about as is are was were be been have has had "
    "do does did not no yes my your our this that these those there here what when where why how which who can could "
    "would should will just also very really too more most some any all order ordered item items dress shirt shoes "
    "size sizes small medium large fit fits fitting color colour fabric quality price refund return returned exchange "
    "delivery shipping package arrived late early today yesterday tomorrow week days number tracking account card "
    "payment charged twice help please thanks thank hello hi hey sorry problem issue damaged broken wrong missing "
    "perfect great love lovely nice soft comfortable beautiful cheap awful poor disappointed happy glad sure okay "
    "customer service agent manager store online website app email message reply check update status refunded "
    "cancel cancelled new old same different again still already never always maybe sometimes because if then than"
).split()
FOREIGN = ("好的，谢谢", "我想退货", "ありがとうございます", "감사합니다", "شكرا جزيلا", "спасибо большое",
           "café crème",
           "naïve façade", "Straße", "x² ≤ y ± 1", "€25,00", "über", "θ ≈ π/2")
EMOJI = ("😀", "👍🏽", "❤️", "👨‍👩‍👧", "🇫🇷", "🙏", "😡", "🎉", "1️⃣", "👩🏾‍💻", "🏳️‍🌈", "✨", "😂😂", "📦")
MARKERS = (("[bom]", "[eom]"), ("[BOM] ", " [EOM]"), ("[ Bom ]\n", "\n[ eom ]"), ("[bom]\n", "[eom]\n"))
WRAPS = ("<p>{}</p>", "<div>{}</div>", "{}<br>", "<b>{}</b>", '<a href="https://shop.example/o/1">{}</a>',
         "<ul><li>{}</li></ul>", "{} &amp; more", "it&#39;s {}", "{}&nbsp;!", "<span style='color:red'>{}</span>")


def dialogue(rng: random.Random, min_words: int = 150, max_words: int = 300) -> str:
    """One dialogue of ``min_words``-``max_words`` words in 4-10 marked messages."""
    total = rng.randint(min_words, max_words)
    turns = rng.randint(4, 10)
    cuts = sorted(rng.sample(range(1, total), turns - 1))
    parts = []
    for start, stop in zip([0, *cuts], [*cuts, total]):
        words = rng.choices(WORDS, k=stop - start)
        words[0] = words[0].capitalize()
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(FOREIGN))
        for _ in range(rng.choice((0, 0, 1, 2))):
            words.insert(rng.randrange(len(words) + 1), rng.choice(EMOJI))
        text = " ".join(words) + rng.choice((".", "?", "!", " ..."))
        if rng.random() < 0.5:
            text = rng.choice(WRAPS).format(text)
        bom, eom = rng.choice(MARKERS)
        parts.append(f"{bom}{text}{eom}")
    if rng.random() < 0.1:
        parts.insert(0, "Chat transcript:")
    return " ".join(parts)


def dialogues(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [dialogue(rng) for _ in range(count)]
