"""Synthetic, labelled sample corpus of short news-headline-like texts.

Everything in this module -- vocabularies, templates, place names and the
resulting headlines -- was written by the topic_pipeline project for use as the
product's sample data; no text is copied from any external source. The
headlines are *generated*, not collected, and generation is fully
deterministic: the same arguments always produce the same corpus, across runs,
processes and machines (only ``numpy.random.default_rng`` seeded with the
caller's integer seed is used; Python's salted ``hash()`` never is).

The corpus is deliberately not trivial to cluster, so that tuning the
UMAP/HDBSCAN hyperparameters of BERTopic makes a visible difference:

* topics have unequal sizes (the largest is about three times the smallest);
* each topic uses several headline templates with slots (actors, verbs,
  objects, places, numbers), so documents of one topic do not all look alike;
* related topics ("markets" and "energy", "football" and "tennis",
  "technology" and "space", ...) share some vocabulary: about one headline in
  six borrows an actor, object or event from a related topic;
* about 5-10% of the words are generic, topic-free newsroom filler
  ("Update:", "officials say", "what we know", ...).

Typical use::

    corpus = generate_sample_corpus(n_docs=1500, n_topics=10)
    seed = corpus.ground_truth(labelled_fraction=0.6)   # {"0": [ids...], ...}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["SampleCorpus", "generate_sample_corpus", "TOPIC_NAMES", "MAX_TOPICS"]


# ---------------------------------------------------------------------------
# Topic vocabularies (all invented for this project)
#
# Template slots filled from the topic's own lists:
#   {A} actor  -- verbs right after it are written in the 3rd person singular
#                 and are put into the plural automatically for plural actors
#   {V} verb phrase fitting {O}    {O} object / theme    {X} event / cause
#   {Y} {Z} {W}  further topic-specific lists
# Shared slots: see ``_SHARED_SLOTS`` below ({P} place, {N} number, ...).
# ---------------------------------------------------------------------------

_TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "energy": {
        "A": (
            "Grid operator", "Utility giant", "Energy regulator", "Oil major",
            "Wind farm developer", "Solar firm", "Pipeline company",
            "Energy minister", "Nuclear plant operator", "Gas supplier",
            "Power cooperative", "Battery maker",
        ),
        "V": (
            "raises", "cuts", "freezes", "caps", "expands", "delays",
            "approves", "scraps", "reviews", "doubles",
        ),
        "O": (
            "electricity tariffs", "gas prices", "fuel duty", "power output",
            "offshore wind capacity", "solar subsidies", "heating bills",
            "crude production", "grid investment", "nuclear reactor plans",
            "battery storage targets", "refinery capacity", "hydrogen funding",
        ),
        "X": (
            "winter blackout fears", "a cold snap", "record demand",
            "supply shortages", "a pipeline leak", "turbine failures",
            "a heatwave", "low reservoir levels", "network congestion",
            "a refinery strike",
        ),
        "Y": (
            "electricity bills", "gas bills", "heating costs", "fuel prices",
            "standing charges", "petrol prices",
        ),
        "Z": (
            "wind farm", "solar park", "gas pipeline", "battery plant",
            "nuclear reactor", "hydro dam", "power interconnector",
        ),
        "T": (
            "{A} {V} {O} amid {X}",
            "{A} {V} {O} in {P}",
            "Households in {P} face higher {Y} after {X}",
            "{Y} to rise {PCT} next quarter, {A} warns",
            "{A} blames {X} for outage affecting {NL} homes",
            "{P} signs {M} deal for new {Z}",
            "{P} switches on {N}-turbine offshore wind park",
            "Petrol stations in {P} ration fuel after {X}",
            "{A} pledges {M} for new {Z}",
            "Power restored to {NL} homes in {P} after {X}",
            "{A} warns {Y} will stay high until {MONTH}",
        ),
    },
    "markets": {
        "A": (
            "Central bank", "Stock exchange", "Hedge fund", "Investment bank",
            "Bond traders", "Pension fund", "Retail investors",
            "Finance ministry", "Ratings agency", "Asset manager",
            "Insurance group", "Sovereign wealth fund",
        ),
        "V": (
            "rallies on", "slides on", "shrugs off", "rebounds after",
            "tumbles after", "warns over", "cheers", "braces for",
            "steadies after", "bets on",
        ),
        "O": (
            "an interest rate cut", "rising bond yields", "quarterly earnings",
            "inflation data", "the jobs report", "merger talks",
            "weak retail sales", "a currency slump", "record share buybacks",
            "falling commodity prices", "a bank rescue", "debt ceiling talks",
        ),
        "X": (
            "a profit warning", "a surprise rate hike", "weak guidance",
            "a takeover bid", "recession worries", "strong payrolls",
            "a credit downgrade", "a trading halt", "a failed bond auction",
        ),
        "Y": (
            "tech stocks", "bank shares", "government bonds", "airline shares",
            "mining stocks", "the dollar", "emerging market debt", "gold",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} as {Y} wobble",
            "Shares {MOVE} {PCT} after {X}",
            "Index closes {SPCT} {UPDOWN} after {O}",
            "{A} raises stake in {P} lender to {PCT}",
            "Investors dump {Y} after {X}",
            "{P} lender posts {M} quarterly profit",
            "Currency hits {NS}-month low as {X} spooks traders",
            "{A} expects {Y} to recover by year end",
            "{A} cuts exposure to {Y} ahead of {O}",
            "Bond yields climb {SPCT} as {X} rattles investors",
        ),
    },
    "football": {
        "A": (
            "Striker", "Club captain", "Midfielder", "Goalkeeper", "Manager",
            "Head coach", "Winger", "Centre-back", "Club chairman",
            "Teenage forward", "Caretaker boss", "Full-back",
        ),
        "V": (
            "scores twice in", "is sent off in", "rescues a point in",
            "misses penalty in", "seals victory in", "is injured in",
            "shines in", "is booed after", "nets late winner in",
            "hits hat-trick in",
        ),
        "O": (
            "the derby", "the cup tie", "the league opener",
            "the relegation clash", "the title decider", "the away game",
            "the semi-final", "the playoff final", "the friendly",
            "the penalty shootout", "the continental cup tie",
        ),
        "X": (
            "a red card", "a VAR decision", "a sacking", "a stadium ban",
            "a points deduction", "a late equaliser", "a penalty row",
            "a pitch invasion", "a dressing-room row",
        ),
        "Y": (
            "a loan deal", "a free transfer", "a record fee",
            "a five-year contract", "a swap deal", "a release clause",
        ),
        "Z": (
            "a hamstring injury", "a knee injury", "an ankle sprain",
            "a groin strain", "a broken foot", "concussion",
        ),
        "T": (
            "{A} {V} {O} against {CLUB}",
            "{A} {V} {O} as {CLUB} climb to {ORD}",
            "{CLUB} win {GOALS} after {X}",
            "{A} joins {CLUB} on {Y}",
            "Fans protest after {X} at {CLUB}",
            "{A} out for {NS} weeks with {Z}",
            "{CLUB} confirm {Y} for {A}",
            "Late own goal hands {CLUB} victory in {O}",
            "{CLUB} sack manager after {NS} straight league defeats",
            "{CLUB} held to goalless draw in {O}",
            "{CLUB} climb to {ORD} after {GOALS} win over {CLUB}",
        ),
    },
    "tennis": {
        "A": (
            "Top seed", "Defending champion", "Qualifier", "Wildcard",
            "Former world number one", "Teenage prodigy", "Second seed",
            "Veteran baseliner", "Lucky loser", "Grand slam finalist",
            "Left-hander", "Home favourite",
        ),
        "V": (
            "cruises into", "crashes out of", "battles into", "withdraws from",
            "saves match points to reach", "books place in", "storms into",
            "edges into", "is knocked out of", "reaches",
        ),
        "O": (
            "the quarter-finals", "the second round", "the final",
            "the semi-finals", "the third round", "the last sixteen",
            "the doubles final", "the season finale",
        ),
        "X": (
            "a double fault", "a rain delay", "a racket smash",
            "a code violation", "a fifth-set tiebreak", "a ranking drop",
            "a serving slump", "a line-call dispute", "a marathon rally",
        ),
        "Z": (
            "a wrist injury", "a shoulder problem", "a back strain",
            "an ankle sprain", "illness", "a knee injury",
        ),
        "T": (
            "{A} {V} {O} at {EVENT}",
            "{A} {V} {O} after {X}",
            "{A} wins in straight sets {SCORE} at {EVENT}",
            "{A} fined after {X} at {EVENT}",
            "{EVENT}: {A} {V} {O}",
            "{A} hits {N} aces to reach {O}",
            "{A} climbs to {ORD} in world rankings after {EVENT} title",
            "{A} pulls out of {EVENT} with {Z}",
            "Crowd cheers as {A} saves {NS} break points",
            "{A} and partner lift {EVENT} doubles trophy",
            "{A} survives {X} to reach {O}",
        ),
    },
    "health": {
        "A": (
            "Health ministry", "Hospital trust", "Nurses union",
            "Medical regulator", "Public health agency", "Junior doctors",
            "Drug maker", "Vaccine researchers", "Care home operator",
            "Paramedics", "GP surgeries", "Cancer charity",
        ),
        "V": (
            "warns of", "reports rise in", "launches drive against", "tracks",
            "struggles with", "calls for action on", "publishes study on",
            "raises alarm over",
        ),
        "O": (
            "measles cases", "flu admissions", "antibiotic resistance",
            "hospital waiting lists", "ambulance delays", "childhood obesity",
            "dementia diagnoses", "sepsis deaths", "vaccine hesitancy",
            "norovirus outbreaks", "heart disease", "long hospital stays",
        ),
        "X": (
            "a staffing crisis", "a winter surge", "bed shortages",
            "a drug shortage", "a pay dispute", "a funding gap",
            "rising admissions", "a ward closure", "an outbreak",
        ),
        "Y": (
            "heart attacks", "migraines", "asthma attacks", "relapse risk",
            "blood pressure", "hospital stays",
        ),
        "Z": (
            "hip operations", "cataract surgery", "knee replacements",
            "mental health referrals", "cancer scans",
        ),
        "W": (
            "free flu jabs", "eye tests", "dental checks", "booster vaccines",
            "blood pressure checks", "hearing tests",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} in {P}",
            "{P} hospitals declare critical incident amid {X}",
            "Study of {NL} patients links poor sleep to {Y}",
            "{A} strikes over {X} in {P}",
            "Waiting list for {Z} tops {NL}",
            "New drug cuts {Y} by {PCT}, trial finds",
            "{A} warns {X} will lengthen waits for {Z}",
            "Clinic in {P} offers {W} to over-{AGE}s",
            "{A} urges parents to book {W}",
        ),
    },
    "technology": {
        "A": (
            "Chip maker", "Software giant", "Tech start-up",
            "Social media platform", "Smartphone maker", "Cloud provider",
            "AI lab", "E-commerce giant", "Cybersecurity firm",
            "App developer", "Search company", "Robotics firm",
        ),
        "V": (
            "unveils", "rolls out", "delays", "tests", "pulls", "launches",
            "previews", "scraps", "recalls", "open-sources",
        ),
        "O": (
            "a new chatbot", "a folding phone", "an encrypted messaging app",
            "a language model", "a smart speaker", "a coding assistant",
            "a mixed reality headset", "a home robot", "a faster laptop chip",
            "a photo editing tool", "a premium subscription tier",
            "a self-driving taxi service",
        ),
        "X": (
            "a data breach", "a ransomware attack", "a global outage",
            "an antitrust probe", "a chip shortage", "a privacy fine",
            "a hacker leak", "a layoff round", "a patent lawsuit",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} after {X}",
            "{A} hit by {X} affecting {NS} million users",
            "{A} opens {M} data centre near {P}",
            "Hackers exploit flaw in {O}, {A} confirms",
            "{A} faces {X} over {O}",
            "Users in {P} report {X} at {A}",
            "{A} cuts {NL} jobs after {X}",
            "{A} says {O} will ship in {MONTH}",
            "Review: {O} from {A} is fast but pricey",
        ),
    },
    "elections": {
        "A": (
            "Opposition leader", "Prime minister", "Ruling party",
            "Liberal party", "Incumbent mayor", "Challenger",
            "Centrist coalition", "Green party", "Populist candidate",
            "Party chairman", "Independent candidate", "Former senator",
        ),
        "V": (
            "concedes", "demands recount in", "leads polls ahead of",
            "launches campaign for", "wins", "loses ground in", "boycotts",
            "courts voters before", "challenges result of", "drops out of",
        ),
        "O": (
            "the runoff", "the mayoral race", "the general election",
            "the by-election", "the party primary", "the leadership contest",
            "the referendum", "the regional vote", "the senate race",
            "the parliamentary vote",
        ),
        "X": (
            "a low turnout", "ballot irregularities", "a hung parliament",
            "a landslide", "a polling surge", "a campaign scandal",
            "postal vote delays", "a narrow margin", "a coalition split",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} in {P}",
            "Voters in {P} head to polls as {O} tightens",
            "{A} claims victory after {X}",
            "Turnout reaches {PCTH} in {O}",
            "{A} trails by {NS} points before {O}",
            "Ballots recounted in {P} after {X}",
            "{A} promises tax cuts ahead of {O}",
            "{A} wins {O} by {NL} votes",
            "Poll: {A} gains {NS} points after televised debate",
        ),
    },
    "climate": {
        "A": (
            "Climate scientists", "Environment agency", "Activists",
            "Conservation group", "Weather service", "Glaciologists",
            "Marine biologists", "Climate envoy", "Forest rangers",
            "Flood wardens", "Environment minister", "Campaigners",
        ),
        "V": (
            "warns of", "records", "protests over", "maps", "tracks",
            "sounds alarm over", "monitors", "measures",
            "blames emissions for", "calls for action on",
        ),
        "O": (
            "melting glaciers", "coral bleaching", "rising sea levels",
            "record temperatures", "forest fires", "carbon emissions",
            "drought", "flash floods", "species loss", "ocean warming",
            "thawing permafrost", "shrinking sea ice",
        ),
        "X": (
            "a record heatwave", "a wildfire season", "a dry winter",
            "a storm surge", "a river flood", "an early snowmelt",
            "a failed monsoon", "a tropical storm", "coastal erosion",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} near {P}",
            "{P} evacuates {NL} residents as {X} hits",
            "Hottest {MONTH} on record fuels fears over {O}",
            "{A} says {O} is happening {PCT} faster than forecast",
            "Climate summit in {P} ends without deal on {O}",
            "{A} stages sit-in over {O}",
            "Satellite images show {O} across {P}",
            "{P} declares emergency after {X}",
            "Study warns {O} could double by {YEAR}",
        ),
    },
    "space": {
        "A": (
            "Space agency", "Rocket company", "Astronomers", "Astronauts",
            "Mission control", "Lunar lander team", "Satellite operator",
            "Mars rover team", "Telescope team", "Private spaceflight firm",
            "Space station crew", "Planetary scientists",
        ),
        "V": (
            "launches", "delays", "tests", "loses contact with", "repairs",
            "upgrades", "unveils", "scrubs launch of", "retires", "refuels",
        ),
        "O": (
            "a lunar probe", "a reusable booster", "a crewed capsule",
            "a weather satellite", "a cargo module", "a Mars sample mission",
            "a new space telescope", "a solar observatory",
            "a heavy-lift rocket", "a moon rover", "an asteroid probe",
        ),
        "X": (
            "an engine anomaly", "a launch pad fire", "high winds",
            "a fuel leak", "a solar storm", "a docking glitch",
            "a heat shield issue", "a telemetry loss", "a debris warning",
        ),
        "Y": (
            "a distant exoplanet", "a comet", "a black hole", "a dwarf galaxy",
            "a gas giant", "an icy moon", "a supernova", "a young star",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} after {X}",
            "Rocket lifts off carrying {N} satellites into orbit",
            "{A} postpones launch of {O} due to {X}",
            "Telescope reveals {Y} {NL} light years away",
            "Crew returns to Earth after {N} days in orbit",
            "{A} captures first images of {Y}",
            "Booster lands upright for {ORD} time",
            "Spacewalk cut short by {X}",
            "{A} names {NS} astronauts for moon mission",
            "{A} finds signs of water on {Y}",
        ),
    },
    "food": {
        "A": (
            "Celebrity chef", "Food critics", "Supermarket chain",
            "Bakery owner", "Street food traders", "Vineyard",
            "Restaurant group", "Farmers market", "Food safety agency",
            "Coffee roaster", "Dairy farmers", "Cheesemakers",
        ),
        "V": (
            "launches", "unveils", "revives", "adds", "discontinues",
            "celebrates", "promotes", "sells out of", "reinvents", "backs",
        ),
        "O": (
            "a vegan tasting menu", "sourdough loaves", "a ramen bar",
            "a dumpling stall", "oat milk lattes", "a seafood festival",
            "a farm-to-table bistro", "aged cheddar", "spicy noodle packs",
            "a pastry counter", "a brunch menu", "a street food market",
        ),
        "X": (
            "a salmonella scare", "a poor olive crop", "a cocoa shortage",
            "an egg shortage", "a price war on bread", "a hygiene downgrade",
            "a staff shortage", "a listeria alert", "a dry summer",
        ),
        "Y": (
            "olive oil", "cocoa", "eggs", "butter", "coffee beans", "rice",
            "tomatoes",
        ),
        "Z": (
            "chickpea fritters", "lemon orzo", "miso aubergine",
            "garlic prawns", "pear tart", "lentil soup", "herb omelette",
        ),
        "T": (
            "{A} {V} {O} in {P}",
            "{A} {V} {O}",
            "{P} bistro named restaurant of the year",
            "Recipe: {Z} in {N} minutes",
            "Queues form as {A} {V} {O}",
            "{Y} recalled from shelves over {X}",
            "Price of {Y} up {PCT} after {X}",
            "Critics pick the best brunch spots in {P}",
            "{A} blames {X} for menu changes",
            "{NS} new restaurants open in {P} this month",
        ),
    },
    "film": {
        "A": (
            "Director", "Studio", "Streaming service", "Lead actress",
            "Producer", "Film festival jury", "Veteran actor",
            "Screenwriter", "Animation studio", "Casting director",
            "Indie distributor", "Award-winning composer",
        ),
        "V": (
            "premieres", "shelves", "casts newcomer in", "wins award for",
            "announces sequel to", "delays release of", "rewrites ending of",
            "acquires rights to", "wraps filming of", "teases trailer for",
        ),
        "O": (
            "the heist thriller", "the animated musical", "the period drama",
            "the horror sequel", "the superhero reboot",
            "the nature documentary", "the romantic comedy",
            "the space western", "the boxing biopic", "the detective series",
            "the fantasy trilogy",
        ),
        "X": (
            "a writers strike", "a standing ovation", "a record opening weekend",
            "a casting row", "a leaked script", "a festival prize",
            "mixed reviews", "a box office flop", "a budget overrun",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} at {P} festival",
            "{O} earns {M} on opening weekend",
            "{O} wins standing ovation at {P} festival",
            "{A} quits {O} after {X}",
            "Review: {O} is a {ADJ} ride",
            "{A} confirms {O} will stream in {MONTH}",
            "{O} tops box office for {NS} weeks",
            "Red carpet in {P} for {O}",
            "{A} in talks to star in {O}",
        ),
    },
    "crime": {
        "A": (
            "Police", "Detectives", "Prosecutors", "Border officers",
            "Anti-fraud squad", "Coastguard", "Regional police force",
            "Investigators", "Customs officers", "Organised crime unit",
            "Cybercrime unit", "Transport police",
        ),
        "V": (
            "arrests suspect in", "charges gang over", "reopens case of",
            "seizes assets in", "makes arrest in", "raids homes over",
            "launches inquiry into", "names suspect in", "releases footage of",
            "offers reward over",
        ),
        "O": (
            "a bank robbery", "a jewellery heist", "a car theft ring",
            "a money laundering scheme", "a cold case murder",
            "an arson attack", "a cargo smuggling plot", "a fatal stabbing",
            "an art forgery racket", "a burglary spree", "a kidnapping",
            "a ticket fraud",
        ),
        "X": (
            "a tip-off", "CCTV footage", "DNA evidence", "a dawn raid",
            "a witness appeal", "a manhunt", "an informant",
            "a forensic breakthrough", "a car chase",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} in {P}",
            "Man, {AGE}, jailed for {NS} years over {O}",
            "{A} makes {NS} arrests after {X}",
            "Trial opens over {O} in {P}",
            "{A} appeals for witnesses after {O} in {P}",
            "{X} leads to arrest over {O}",
            "Woman charged after {O} in {P}",
            "{A} recovers {M} in stolen goods",
            "Verdict due on {D} in trial over {O}",
            "Judge jails gang behind {O}",
        ),
    },
    "housing": {
        "A": (
            "Landlords", "Housebuilder", "Mortgage lender", "Estate agents",
            "Tenants union", "Housing minister", "Council planners",
            "First-time buyers", "Property developer", "Renters",
            "Housing association", "Surveyors",
        ),
        "V": (
            "warns over", "reports rise in", "reports slump in",
            "calls for cap on", "welcomes", "pushes back on", "criticises",
            "lobbies against", "predicts fall in", "highlights",
        ),
        "O": (
            "house prices", "rents", "mortgage rates", "new build numbers",
            "planning reforms", "affordable housing targets",
            "eviction notices", "deposit schemes", "stamp duty",
            "starter homes", "buy-to-let rules", "service charges",
        ),
        "X": (
            "a housing shortage", "a rent freeze", "a mortgage squeeze",
            "a planning row", "a cladding scandal", "a buyer exodus",
            "a building boom", "a damp crisis", "a rate rise",
        ),
        "Z": (
            "tower block plans", "a new estate", "student flats",
            "a retirement village", "a riverside development",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} in {P}",
            "Average rent in {P} tops {RENT} a month",
            "House prices fall {SPCT} as {X} deepens",
            "{A} plans {NL} homes on edge of {P}",
            "{A} warns of {X} in {P}",
            "Mortgage approvals drop to {NS}-month low",
            "{A} struggles as mortgage rates climb to {SPCT}",
            "Council in {P} blocks {Z} after {X}",
            "Asking prices in {P} hit record high",
        ),
    },
    "education": {
        "A": (
            "Teachers union", "Head teachers", "University", "Exam board",
            "School inspectors", "Education secretary", "Students",
            "Nursery providers", "Parents group", "Vice-chancellor",
            "School governors", "Academy trust",
        ),
        "V": (
            "protests over", "overhauls", "scraps", "delays", "defends",
            "reviews", "criticises", "backs", "cuts funding for",
            "publishes report on",
        ),
        "O": (
            "exam results", "tuition fees", "free school meals",
            "the national curriculum", "teacher pay", "class sizes",
            "phone bans in classrooms", "university admissions",
            "student loans", "maths lessons", "school inspections",
            "grading rules",
        ),
        "X": (
            "a teachers strike", "a grading error", "a funding squeeze",
            "a cheating scandal", "crumbling classrooms", "a staffing gap",
            "falling enrolments", "a campus protest", "a snow closure",
        ),
        "Z": (
            "maths exams", "reading tests", "science exams", "final exams",
            "language exams",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} in {P}",
            "{PCTH} of pupils pass {Z} in {P}",
            "Schools in {P} close after {X}",
            "{A} warns of {X} ahead of new term",
            "Record {NL} students accepted to university",
            "{A} to {REFORM} {O} next year",
            "Pupils in {P} sit {Z} despite {X}",
            "{A} votes to strike over {O}",
            "Graduates face higher student loan repayments from {MONTH}",
        ),
    },
    "music": {
        "A": (
            "Rock band", "Pop star", "Rapper", "Record label",
            "Festival organisers", "Orchestra", "Singer-songwriter",
            "Boy band", "Jazz trio", "Girl group", "DJ", "Opera house",
        ),
        "V": (
            "announces", "cancels", "headlines", "releases", "postpones",
            "sells out", "reunites for", "records", "teases", "livestreams",
        ),
        "O": (
            "a world tour", "a comeback album", "a stadium show",
            "a summer festival", "a surprise single", "an acoustic set",
            "a farewell concert", "a live album", "a charity gig", "a duet",
            "a symphony premiere",
        ),
        "X": (
            "ticket chaos", "a vocal injury", "a lineup change",
            "a royalty dispute", "a sold-out run", "a stage collapse",
            "a viral dance", "a noise complaint", "a band split",
        ),
        "Z": (
            "stadium show", "farewell tour", "arena dates", "comeback gig",
            "festival set",
        ),
        "T": (
            "{A} {V} {O}",
            "{A} {V} {O} in {P}",
            "Fans queue overnight as {A} {V} {O}",
            "{A} cancels {O} after {X}",
            "{NL} fans pack {P} arena for {O}",
            "{A} hits number one with {O}",
            "Tickets for {A}'s {Z} sell out in {N} minutes",
            "{P} festival adds {A} to lineup",
            "{A} blames {X} for cancelled {Z}",
            "Review: {A} delivers a {ADJ} show in {P}",
        ),
    },
}

# Public, fixed order in which topics are taken when n_topics < MAX_TOPICS.
# Related pairs come early so that even small corpora keep some overlap.
TOPIC_NAMES: tuple[str, ...] = (
    "energy", "markets", "football", "tennis", "health", "technology",
    "elections", "climate", "space", "food", "film", "crime", "housing",
    "education", "music",
)
MAX_TOPICS: int = len(TOPIC_NAMES)

# Related topics: a headline may borrow an actor / object / event from one.
_RELATED: dict[str, tuple[str, ...]] = {
    "energy": ("markets", "climate"),
    "markets": ("energy", "housing", "technology"),
    "football": ("tennis",),
    "tennis": ("football",),
    "health": ("food", "education"),
    "technology": ("space", "markets"),
    "elections": ("crime", "housing"),
    "climate": ("energy", "space"),
    "space": ("technology", "climate"),
    "food": ("health",),
    "film": ("music",),
    "crime": ("elections",),
    "housing": ("markets", "elections"),
    "education": ("health", "technology"),
    "music": ("film",),
}

# Relative topic sizes (in TOPIC_NAMES order); max/min ratio is 3 for the
# default ten topics.
_WEIGHTS: tuple[float, ...] = (
    3.0, 2.4, 2.7, 1.0, 1.9, 2.2, 1.4, 1.2, 1.6, 1.1, 1.8, 1.3, 1.5, 1.05, 2.0,
)

_BORROWABLE_SLOTS = ("A", "O", "X")

# Probabilities controlling overlap and noise.
_P_BORROW = 0.18        # headline borrows one A/O/X value from a related topic
_P_NOISE_PREFIX = 0.10  # "Update: ..."
_P_NOISE_SUFFIX = 0.20  # "..., officials say"
_P_NOISE_ADVERB = 0.12  # "Utility giant quietly raises ..."

_MIN_WORDS, _MAX_WORDS = 6, 16


# ---------------------------------------------------------------------------
# Shared vocabulary and slots
# ---------------------------------------------------------------------------

_PLACES: tuple[str, ...] = (
    "Lisbon", "Oslo", "Nairobi", "Lagos", "Lima", "Manila", "Osaka", "Denver",
    "Glasgow", "Krakow", "Porto", "Montreal", "Perth", "Accra", "Hanoi",
    "Seville", "Leeds", "Dublin", "Valencia", "Turin", "Bogota", "Auckland",
    "Rotterdam", "Gdansk", "Calgary", "Dakar", "Quito", "Cardiff", "Bremen",
    "Utrecht", "Tampere", "Brno", "Malmo", "Cork",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_MONTHS = (
    "March", "April", "May", "June", "July", "September", "October",
    "November", "December",
)
_ORDINALS = ("second", "third", "fourth", "fifth", "sixth", "tenth")
_CLUB_SUFFIXES = ("United", "City", "Rovers", "Athletic", "Wanderers", "FC", "Town")
_EVENT_SUFFIXES = ("Open", "Masters", "Classic", "Indoor Championships")
_SCORES = ("6-3 6-4", "7-5 6-2", "6-1 6-1", "7-6 6-4", "6-2 7-6", "6-4 6-4")
_ADJECTIVES = ("thrilling", "patchy", "dazzling", "bumpy", "tender", "chaotic", "slick", "moving")
_REFORMS = ("overhaul", "review", "scrap", "expand", "freeze")
_MOVES = ("jump", "sink", "soar", "slip", "climb", "fall")

# Generic, topic-free newsroom filler used as noise.
_NOISE_PREFIXES = (
    "Update:", "Explainer:", "Analysis:", "Breaking:", "Live:", "Exclusive:",
    "Opinion:", "Watch:", "In brief:", "Latest:",
)
_NOISE_SUFFIXES = (
    "officials say", "report says", "sources say", "what we know",
    "as questions mount", "amid wider concerns", "this week",
    "for the first time", "again", "after long delay", "critics say",
    "in surprise move", "according to new report", "on {D}",
)
_NOISE_ADVERBS = ("reportedly", "quietly", "finally", "suddenly", "officially", "now")


def _shared_slots() -> dict[str, Callable[[np.random.Generator], str]]:
    def pick(options: Sequence[str]) -> Callable[[np.random.Generator], str]:
        return lambda rng: _pick(rng, options)

    def money(rng: np.random.Generator) -> str:
        cur = _pick(rng, ("$", "£", "€"))
        if rng.random() < 0.75:
            return f"{cur}{int(rng.integers(2, 900))} million"
        return f"{cur}{int(rng.integers(1, 40))} billion"

    return {
        "P": pick(_PLACES),
        "D": pick(_WEEKDAYS),
        "MONTH": pick(_MONTHS),
        "ORD": pick(_ORDINALS),
        "NS": lambda rng: str(int(rng.integers(2, 13))),
        "N": lambda rng: str(int(rng.integers(10, 91))),
        "NL": lambda rng: f"{int(rng.integers(12, 500)) * 10:,}",
        "AGE": lambda rng: str(int(rng.integers(19, 79))),
        "PCT": lambda rng: f"{int(rng.integers(2, 40))}%",
        "PCTH": lambda rng: f"{int(rng.integers(41, 80))}%",
        "SPCT": lambda rng: f"{int(rng.integers(1, 50)) / 10:.1f}%",
        "M": money,
        "RENT": lambda rng: f"£{int(rng.integers(80, 300)) * 10:,}",
        "YEAR": lambda rng: str(int(rng.integers(2030, 2071))),
        "GOALS": _goals,
        "CLUB": lambda rng: f"{_pick(rng, _PLACES)} {_pick(rng, _CLUB_SUFFIXES)}",
        "EVENT": lambda rng: f"{_pick(rng, _PLACES)} {_pick(rng, _EVENT_SUFFIXES)}",
        "SCORE": pick(_SCORES),
        "UPDOWN": pick(("higher", "lower")),
        "MOVE": pick(_MOVES),
        "ADJ": pick(_ADJECTIVES),
        "REFORM": pick(_REFORMS),
    }


def _goals(rng: np.random.Generator) -> str:
    winner = int(rng.integers(1, 6))
    loser = int(rng.integers(0, winner))
    return f"{winner}-{loser}"


_SHARED_SLOTS = _shared_slots()
_SLOT_RE = re.compile(r"\{([A-Z]+)\}")
_PLURAL_MARK = "\x00"

assert set(TOPIC_NAMES) == set(_TOPICS) == set(_RELATED)
assert len(_WEIGHTS) == MAX_TOPICS


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleCorpus:
    """A generated, labelled corpus: parallel lists of ids, texts and true topics."""

    ids: list[int]
    texts: list[str]
    topics: list[str]

    def ground_truth(
        self, labelled_fraction: float = 0.6, seed: int = 7
    ) -> dict[str, list[int]]:
        """A labelled sample in the project's seed format: {"<cluster id>": [text ids]}, cluster ids are
        strings "0".."k-1" (sorted by topic name), each list sorted ascending; a deterministic random subset
        of ids (labelled_fraction of the corpus, stratified per topic) -- documents outside it stay unlabelled."""
        fraction = float(labelled_fraction)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"labelled_fraction must be in (0, 1], got {labelled_fraction!r}")
        rng = np.random.default_rng(seed)
        by_topic: dict[str, list[int]] = {}
        for doc_id, topic in zip(self.ids, self.topics):
            by_topic.setdefault(topic, []).append(int(doc_id))
        result: dict[str, list[int]] = {}
        for cluster, topic in enumerate(sorted(by_topic)):
            members = sorted(by_topic[topic])
            k = min(len(members), max(1, int(round(fraction * len(members)))))
            chosen = rng.choice(len(members), size=k, replace=False)
            result[str(cluster)] = sorted(members[int(i)] for i in chosen)
        return result

    def topic_names(self) -> list[str]:
        """Distinct topic names, sorted; index i is cluster id ``str(i)`` of :meth:`ground_truth`."""
        return sorted(set(self.topics))

    def __len__(self) -> int:
        return len(self.ids)


def generate_sample_corpus(
    n_docs: int = 1500, n_topics: int = 10, seed: int = 20261122
) -> SampleCorpus:
    """Generate a deterministic synthetic headline corpus.

    ``n_topics`` topics (3..MAX_TOPICS) are taken from :data:`TOPIC_NAMES` in
    order; topic sizes are unequal but every topic gets at least 5 documents,
    so ``n_docs`` must be at least ``5 * n_topics``. Documents are shuffled;
    ids are unique, increasing positive ints starting just above 1000, with
    small gaps.
    """
    n_docs = int(n_docs)
    n_topics = int(n_topics)
    if not 3 <= n_topics <= MAX_TOPICS:
        raise ValueError(f"n_topics must be between 3 and {MAX_TOPICS}, got {n_topics}")
    if n_docs < 5 * n_topics:
        raise ValueError(f"n_docs must be at least 5 * n_topics = {5 * n_topics}, got {n_docs}")

    rng = np.random.default_rng(seed)
    names = TOPIC_NAMES[:n_topics]
    sizes = _topic_sizes(n_docs, np.asarray(_WEIGHTS[:n_topics], dtype=float))

    topics: list[str] = []
    texts: list[str] = []
    seen: set[str] = set()
    for name, size in zip(names, sizes):
        for _ in range(size):
            text = _headline(rng, name)
            for _retry in range(8):  # keep texts (almost) unique
                if text.lower() not in seen:
                    break
                text = _headline(rng, name)
            seen.add(text.lower())
            topics.append(name)
            texts.append(text)

    order = rng.permutation(len(texts))
    texts = [texts[int(i)] for i in order]
    topics = [topics[int(i)] for i in order]
    steps = rng.integers(1, 4, size=len(texts))  # steps of 1..3 leave gaps
    ids = [1000 + int(v) for v in np.cumsum(steps)]
    return SampleCorpus(ids=ids, texts=texts, topics=topics)


# ---------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------


def _topic_sizes(n_docs: int, weights: np.ndarray) -> list[int]:
    """Split n_docs proportionally to weights (largest remainder), each >= 5."""
    n = len(weights)
    base = 5
    rest = n_docs - base * n
    raw = weights / weights.sum() * rest
    sizes = np.floor(raw).astype(int)
    remainder = rest - int(sizes.sum())
    order = sorted(range(n), key=lambda i: (-(raw[i] - sizes[i]), i))
    for i in order[:remainder]:
        sizes[i] += 1
    return [int(s) + base for s in sizes]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _is_plural(actor: str) -> bool:
    last = actor.split()[-1].lower()
    return last == "police" or (last.endswith("s") and not last.endswith(("ss", "us")))


def _pluralise_verb(word: str) -> str:
    """3rd person singular -> plural ("warns" -> "warn", "is" -> "are")."""
    special = {"is": "are", "has": "have", "was": "were"}
    if word in special:
        return special[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "zzes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _headline(rng: np.random.Generator, topic: str) -> str:
    vocab = _TOPICS[topic]
    template = _pick(rng, vocab["T"])
    slots = _SLOT_RE.findall(template)

    # Overlap: sometimes borrow one actor / object / event from a related topic.
    borrow_slot: str | None = None
    borrow_vocab = vocab
    candidates = [s for s in _BORROWABLE_SLOTS if s in slots]
    if candidates and rng.random() < _P_BORROW:
        borrow_slot = _pick(rng, candidates)
        borrow_vocab = _TOPICS[_pick(rng, _RELATED[topic])]

    def repl(match: "re.Match[str]") -> str:
        slot = match.group(1)
        if slot == borrow_slot:
            value = _pick(rng, borrow_vocab[slot])
        elif slot in vocab:
            value = _pick(rng, vocab[slot])
        else:
            value = _SHARED_SLOTS[slot](rng)
        if slot == "A":
            if match.start() > 0 and len(value) > 1 and value[1].islower():
                value = value[0].lower() + value[1:]  # actor in mid-sentence
            if _is_plural(value):
                value += _PLURAL_MARK
        return value

    text = _SLOT_RE.sub(repl, template)
    # Subject-verb agreement for plural actors: the word right after the actor.
    text = re.sub(
        _PLURAL_MARK + r" (\S+)", lambda m: " " + _pluralise_verb(m.group(1)), text
    )
    text = text.replace(_PLURAL_MARK, "")
    text = _capitalise(text)

    # Generic noise (roughly 5-10% of all words).
    words = text.split()
    if template.startswith("{A} {V}") and rng.random() < _P_NOISE_ADVERB:
        # "Utility giant raises ..." -> "Utility giant quietly raises ..."
        verb_pos = _verb_position(words, vocab, borrow_vocab if borrow_slot == "A" else vocab)
        if verb_pos is not None:
            words.insert(verb_pos, _pick(rng, _NOISE_ADVERBS))
    text = " ".join(words)
    if rng.random() < _P_NOISE_SUFFIX:
        suffix = _SLOT_RE.sub(lambda m: _SHARED_SLOTS[m.group(1)](rng), _pick(rng, _NOISE_SUFFIXES))
        candidate = f"{text}, {suffix}"
        if len(candidate.split()) <= _MAX_WORDS:
            text = candidate
    if rng.random() < _P_NOISE_PREFIX and ":" not in text and len(text.split()) < _MAX_WORDS:
        text = f"{_pick(rng, _NOISE_PREFIXES)} {text}"

    if len(text.split()) < _MIN_WORDS:
        text = f"{text} {_pick(rng, ('in', 'near'))} {_pick(rng, _PLACES)}"
    return text


def _verb_position(
    words: list[str], vocab: dict[str, tuple[str, ...]], actor_vocab: dict[str, tuple[str, ...]]
) -> int | None:
    """Index of the first word after the leading actor, if the actor is found."""
    joined_lower = " ".join(words).lower()
    for actor in sorted(set(vocab["A"]) | set(actor_vocab["A"]), key=len, reverse=True):
        if joined_lower.startswith(actor.lower() + " "):
            return len(actor.split())
    return None


def _capitalise(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]
