"""Writes examples/data/shard_tales.txt: a small English corpus written for train_lm.py.

Short tales about a workshop of clockmakers, generated from a hand-written grammar with a
fixed seed, so the file is reproducible and free of third-party text.  About 200 KB.
"""
import random
import sys

NAMES = ["Ada", "Bram", "Cora", "Dov", "Elin", "Fitz", "Greta", "Hugo", "Ines", "Jory",
         "Kaia", "Lev", "Mira", "Nils", "Orla", "Pim"]
TRADES = ["clockmaker", "glassblower", "weaver", "miller", "cartographer", "baker",
          "lamplighter", "ferryman", "beekeeper", "printer"]
PLACES = ["the workshop", "the harbour", "the old mill", "the market square", "the tower",
          "the river bank", "the library", "the orchard", "the bridge", "the bakery"]
THINGS = ["a brass gear", "a silver key", "a cracked lens", "a spool of thread", "a map",
          "a loaf of rye", "a lantern", "a jar of honey", "a pocket watch", "a sealed letter",
          "a wooden box", "a copper bell"]
ADJ = ["quiet", "bright", "cold", "patient", "curious", "tired", "careful", "restless",
       "cheerful", "stubborn"]
TIMES = ["At dawn", "Before noon", "In the evening", "After the rain", "On market day",
         "Late at night", "When the bells rang", "In the first snow"]
VERBS_T = ["found", "mended", "carried", "wrapped", "polished", "measured", "hid", "traded",
           "opened", "lost"]
FEEL = ["glad", "worried", "proud", "puzzled", "calm", "uneasy", "hopeful"]
SAYINGS = ["Every gear turns the next one.", "Measure twice, cut once.",
           "A slow clock is still a clock.", "The river keeps its own time.",
           "Light the lamp before it is dark.", "Many hands make a small load.",
           "No key opens every door."]


def person(r):
    return f"{r.choice(NAMES)} the {r.choice(TRADES)}"


def sentence(r):
    k = r.randrange(7)
    a, b = r.choice(NAMES), r.choice(NAMES)
    if k == 0:
        return f"{r.choice(TIMES)}, {person(r)} {r.choice(VERBS_T)} {r.choice(THINGS)} near {r.choice(PLACES)}."
    if k == 1:
        return f"{a} was {r.choice(ADJ)} and {r.choice(FEEL)}, for {r.choice(THINGS)} had gone missing from {r.choice(PLACES)}."
    if k == 2:
        return f"\"Have you seen {r.choice(THINGS)}?\" asked {a}. \"Only at {r.choice(PLACES)},\" said {b}."
    if k == 3:
        n = r.randrange(2, 13)
        return f"{a} counted {n} steps from {r.choice(PLACES)} to {r.choice(PLACES)}, then {n * 2} more."
    if k == 4:
        return f"{b} smiled and said: \"{r.choice(SAYINGS)}\""
    if k == 5:
        return f"The {r.choice(ADJ)} {r.choice(TRADES)} {r.choice(VERBS_T)} {r.choice(THINGS)} and gave it to {a}."
    return f"So {a} and {b} walked to {r.choice(PLACES)} together, and the day grew {r.choice(ADJ)}."


def main(path, target_bytes=200_000, seed=1234):
    r = random.Random(seed)
    out, size, tale = [], 0, 1
    while size < target_bytes:
        para = [f"Tale {tale}."] + [sentence(r) for _ in range(r.randrange(4, 9))]
        text = " ".join(para) + "\n\n"
        out.append(text)
        size += len(text)
        tale += 1
    with open(path, "w", encoding="ascii") as f:
        f.write("".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "shard_tales.txt")
