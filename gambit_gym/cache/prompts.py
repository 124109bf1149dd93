"""The mHealth prompt set of the paper: 20 style dimensions x 2 poles = 40 prompts.

Each prompt asks for a single 2-3 sentence step-count nudge that mentions the
user's previous-day step bucket and where they are, written "mildly
{adjective}". Each dimension also carries a few exemplar sentences per pole,
which :mod:`gambit_gym.cache.embedder` turns into a semantic axis for scoring.
"""

from __future__ import annotations

from dataclasses import dataclass

#: (dimension, positive adjective, negative adjective, positive exemplars, negative exemplars)
STYLE_DIMENSIONS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("optimism", "optimistic", "pessimistic",
     ("Great things are ahead: every step today brings you closer to feeling amazing!",
      "You're doing so well, and today is a bright chance to walk even more."),
     ("Yesterday's steps probably won't change much, and today may not be any better.",
      "Walking more rarely works out, but you might as well try.")),
    ("formality", "formal", "informal",
     ("Dear user, we kindly recommend that you increase your daily step count today.",
      "We would like to inform you that additional walking is advised for your wellbeing."),
     ("Hey! Let's get those legs moving, yeah? Go grab some steps!",
      "Yo, quick walk? Totally worth it, trust me lol.")),
    ("encouragement", "encouraging", "unencouraging",
     ("You can do this! Every extra step counts, so keep going strong.",
      "I believe in you: take a few more steps and be proud of your progress."),
     ("Walking more is probably not worth the effort for you today.",
      "Don't bother pushing yourself; your step count hardly matters.")),
    ("severity", "severe", "lax",
     ("You must walk more today. Inactivity seriously harms your health.",
      "This is serious: too few steps puts your heart at real risk."),
     ("No pressure at all, walk a bit if you feel like it, or don't.",
      "Whatever works for you is fine; steps can always wait.")),
    ("clarity", "clear", "unclear",
     ("Take a 10-minute walk after lunch today to add about 1,000 steps.",
      "Goal for today: walk 2,000 more steps than yesterday."),
     ("Steps, maybe, somehow, in a way that sort of might be more or less a thing.",
      "Perhaps consider the general notion of movement, or its absence, whenever.")),
    ("humor", "humorous", "unhumorous",
     ("Your couch called: it needs a break from you. Go take a walk!",
      "Your sneakers are feeling lonely and dramatic. Take them for a stroll!"),
     ("Please take additional steps today.",
      "Walking more steps is recommended for health.")),
    ("complexity", "complex", "simple",
     ("Incrementally augmenting ambulatory activity, contingent upon your circumstances, "
      "optimizes cardiovascular and metabolic outcomes.",
      "Considering your multifaceted schedule, integrating intermittent perambulation yields "
      "compounded physiological benefits."),
     ("Walk more today. It is good for you.",
      "Take a short walk. You will feel good.")),
    ("vision", "visionary", "low-vision",
     ("Picture the healthier, stronger you of next year: today's steps build that future.",
      "Every walk today is a step toward a lifetime of energy and adventure."),
     ("Just take some steps today, that's all.",
      "Walk a little now. Nothing more to it.")),
    ("detail", "detailed", "low-detail",
     ("Yesterday you walked about 7,500 steps; a 15-minute walk at noon adds roughly 1,500 more, "
      "raising your total to 9,000.",
      "Try three 5-minute walks, at 10am, 1pm and 4pm, to add around 1,800 steps."),
     ("Walk more.",
      "Move a bit today.")),
    ("threat", "threatening", "non-threatening",
     ("Keep skipping walks and you will pay for it with your health.",
      "If you don't walk more today, the consequences will catch up with you."),
     ("Whenever you're ready, a gentle walk might feel nice.",
      "No worries at all, a little stroll could be pleasant today.")),
    ("urgency", "urgent", "non-urgent",
     ("Right now! Get up and walk immediately, don't wait another minute!",
      "Time is running out today: go for a walk now!"),
     ("Sometime this week, whenever it suits you, you could take a walk.",
      "There's no rush; a walk can happen at any point.")),
    ("politeness", "polite", "impolite",
     ("Would you please consider taking a short walk today? Thank you so much!",
      "If it's not too much trouble, we'd be grateful if you took a few more steps."),
     ("Get off your lazy butt and walk, seriously.",
      "Stop being so sluggish and move already.")),
    ("personalization", "personal", "impersonal",
     ("I know your day at work is busy, but you've got this, and I'm cheering for you!",
      "Since you love your neighborhood, why not enjoy a stroll near your home today?"),
     ("Users are advised to increase step counts.",
      "Physical activity guidelines recommend additional daily steps.")),
    ("concision", "concise", "diffuse",
     ("Walk 10 minutes now.",
      "More steps today. Go!"),
     ("So, in thinking about everything going on and all the various things you might do, "
      "it could be that at some point, possibly, walking a bit more might fit in somewhere.",
      "There are many ways to think about steps, and in a broad sense, considering all of them, "
      "maybe more is something to reflect on at length.")),
    ("actionability", "actionable", "not actionable",
     ("Set a timer for 3pm and take a 10-minute walk around the block.",
      "Take the stairs instead of the elevator twice today."),
     ("Steps are an interesting concept in health.",
      "Activity is part of life in many ways.")),
    ("emotiveness", "emotive", "unemotional",
     ("I'm so thrilled for you, your heart will sing with joy after a lovely walk!",
      "Feel the wonderful rush of happiness a walk brings, you deserve it!"),
     ("Step count: below target. Recommendation: walk.",
      "Data indicates additional steps are required.")),
    ("authority", "authoritative", "unauthoritative",
     ("Health experts agree: 8,000 steps a day reduces mortality risk. Follow this guidance.",
      "Medical research clearly shows that walking more today will improve your health."),
     ("I'm not really sure, but maybe walking could help? I don't know.",
      "I could be wrong, but perhaps more steps might be okay?")),
    ("authenticity", "authentic", "inauthentic",
     ("Honestly, some days are hard to get moving, I get it. A short walk still helps.",
      "Real talk: I know it's tough, but even a few steps is genuine progress."),
     ("OMG you are literally the BEST walker EVER!!! AMAZING!!!",
      "Our #1 valued customer, walk now for the ultimate premium health experience!")),
    ("supportiveness", "supportive", "unsupportive",
     ("Whatever pace works for you is great. I'm here for you, one step at a time.",
      "It's okay if yesterday was tough; let's take a gentle walk together today."),
     ("Your step count is disappointing. Not my problem if you don't improve.",
      "You're on your own with this; figure out your walking yourself.")),
    ("gender", "female-coded", "male-coded",
     ("Treat yourself, girl! A lovely walk with your gal pals will make you glow.",
      "Hey queen, take a sweet stroll and enjoy some me-time today."),
     ("Man up, bro! Crush those steps like a champ.",
      "Hey dude, walk it out like a real man today, beast mode.")),
)

DIMENSION_NAMES: tuple[str, ...] = tuple(d[0] for d in STYLE_DIMENSIONS)

#: How each context level is phrased in the instruction.
PLACE_PHRASES = {"home": "at home", "work": "at work", "other": "out and about (not at home or work)"}

SYSTEM_PROMPT = (
    "You write push notifications for a step-counting mobile health app. "
    "Reply with the notification text only: no greeting line, no quotes, no explanations."
)

INSTRUCTION_TEMPLATE = (
    "Write a single 2-3 sentence app message encouraging the user to take more steps today. "
    "Mention that they took {steps} steps yesterday and that they are {place}. "
    "Make the message mildly {adjective}."
)


#: One worked example shown before each request (a style outside the 40): it keeps a small
#: model on topic. Messages that copy it are rejected as echoes.
#: Its place and step count are outside the real contexts, so a copy cannot pass as a message.
EXAMPLE_CONTEXT = {"location": "the park", "previous_day_steps": "about 3,000"}
EXAMPLE_ADJECTIVE = "cheerful"
EXAMPLE_REPLY = (
    "Yesterday you walked about 3,000 steps, a solid start! You're at the park right now, "
    "so why not add one extra lap on the path before you head off?"
)


@dataclass(frozen=True)
class Prompt:
    """One action: ``id`` (e.g. "optimistic"), its ``dimension`` and ``pole`` (+1 / -1)."""

    id: str
    dimension: str
    pole: int
    adjective: str

    def instruction(self, context: dict[str, str], adjective: str | None = None) -> str:
        steps = context.get("previous_day_steps", "an unknown number of")
        place = PLACE_PHRASES.get(context.get("location", ""), f"at {context.get('location', 'an unknown place')}")
        return INSTRUCTION_TEMPLATE.format(steps=steps, place=place, adjective=adjective or self.adjective)

    def messages(self, context: dict[str, str]) -> list[dict[str, str]]:
        """Chat messages for an OpenAI-style chat-completions call: system, one worked example, request."""
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": self.instruction(EXAMPLE_CONTEXT, EXAMPLE_ADJECTIVE)},
            {"role": "assistant", "content": EXAMPLE_REPLY},
            {"role": "user", "content": self.instruction(context)},
        ]


#: The 40 mHealth prompts, positive then negative pole of each dimension, in the paper's order.
MHEALTH_PROMPTS: tuple[Prompt, ...] = tuple(
    Prompt(adj, dim, pole, adj)
    for dim, pos, neg, _, _ in STYLE_DIMENSIONS
    for pole, adj in ((1, pos), (-1, neg))
)
