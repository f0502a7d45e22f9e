"""The demo world's cast: channels, countries, attributes, products and their effects.

Every number that shapes the story lives here so the story can be read (and tuned) in one
place. Effects are on the logit of lead conversion unless said otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Channel:
    name: str
    #: Share of all leads.
    share: float
    #: Effect on the lead's conversion logit (referral/events convert, social_ads does not).
    quality: float
    #: Cost that follows the leads bought (clicks, ad impressions, partner fees, event
    #: tickets), per lead, in the spend table's currency.
    cost_per_lead: float
    #: Cost that does not (agency retainers, content writers, e-mail and WhatsApp tools,
    #: booth fees), as a flat daily amount; given per lead over the whole world so that a
    #: world of any size has the same unit economics.
    fixed_cost_per_lead: float
    campaigns: tuple[str, ...]


#: Costs are set so that LTV/CAC runs from about 2x (events: trade shows cost ~600 a lead)
#: to about 8x (organic search: content is a fixed cost that many leads share); paid search
#: sits just above the 3x rule of thumb, social ads is cheap per lead but converts worst.
CHANNELS: tuple[Channel, ...] = (
    Channel("organic_search", 0.24, 0.10, 8.0, 85.0, ("seo_blog", "seo_docs")),
    Channel("paid_search", 0.20, 0.25, 145.0, 20.0, ("ps_brand", "ps_generic", "ps_competitor")),
    Channel("social_ads", 0.24, -0.90, 85.0, 15.0, ("sa_prospecting", "sa_retargeting", "sa_lookalike")),
    Channel("email", 0.10, 0.05, 10.0, 80.0, ("em_newsletter", "em_nurture")),
    Channel("referral", 0.07, 1.10, 260.0, 60.0, ("ref_partner", "ref_customer")),
    Channel("whatsapp", 0.07, 0.30, 80.0, 45.0, ("wa_click_to_chat",)),
    Channel("events", 0.08, 0.90, 420.0, 180.0, ("ev_tradeshow", "ev_webinar")),
)
CHANNEL_NAMES: tuple[str, ...] = tuple(c.name for c in CHANNELS)
CAMPAIGNS: tuple[str, ...] = tuple(k for c in CHANNELS for k in c.campaigns)
#: Index into CAMPAIGNS of each channel's first campaign, and how many it has.
CAMPAIGN_OFFSET = np.cumsum([0] + [len(c.campaigns) for c in CHANNELS[:-1]])
CAMPAIGN_COUNT = np.array([len(c.campaigns) for c in CHANNELS])
#: Retargeting and brand campaigns reach people who already know the product.
CAMPAIGN_QUALITY = np.array(
    [0.3 if ("retargeting" in k or "brand" in k or "customer" in k) else 0.0 for k in CAMPAIGNS]
)


@dataclass(frozen=True)
class Country:
    code: str
    share: float
    calling_code: str
    #: National trunk prefix dialled before the number at home ("0" in GB), if any.
    trunk: str
    #: Mobile prefixes; the rest of the national number is random digits.
    mobile_prefixes: tuple[str, ...]
    mobile_digits: int
    #: Digit groups of the national significant number, for human-style formatting.
    groups: tuple[int, ...]
    #: Switchboard (landline) prefix and digit count, for shared company phones.
    landline_prefix: str
    landline_digits: int
    landline_groups: tuple[int, ...]


COUNTRIES: tuple[Country, ...] = (
    Country("GB", 0.40, "44", "0", ("74", "75", "77", "78", "79"), 8, (4, 6), "207", 7, (2, 4, 4)),
    Country("US", 0.22, "1", "", ("212", "312", "415", "617", "206", "512"), 7, (3, 3, 4), "646", 7, (3, 3, 4)),
    Country("IE", 0.10, "353", "0", ("83", "85", "86", "87", "89"), 7, (2, 3, 4), "1", 7, (1, 3, 4)),
    Country("DE", 0.16, "49", "0", ("151", "152", "157"), 8, (3, 8), "30", 8, (2, 8)),
    Country("ES", 0.12, "34", "", ("6",), 8, (3, 3, 3), "91", 7, (2, 3, 4)),
)
COUNTRY_CODES: tuple[str, ...] = tuple(c.code for c in COUNTRIES)
COUNTRY_QUALITY = np.array([0.15, 0.0, 0.1, -0.1, -0.2])

#: Share of leads that are businesses (they have company attributes and may get a deal).
B2B_SHARE = 0.40
INDUSTRIES: tuple[str, ...] = (
    "retail", "software", "manufacturing", "finance", "healthcare", "logistics", "education",
    "hospitality",
)
INDUSTRY_QUALITY = np.array([0.0, 0.3, 0.1, 0.2, -0.1, 0.1, -0.3, -0.2])
#: Multiplier on how long a deal takes to close: regulated industries buy slowly.
INDUSTRY_CLOSE_SPEED = np.array([0.7, 0.85, 1.1, 1.5, 1.5, 1.0, 1.25, 0.7])
COMPANY_SIZES: tuple[str, ...] = ("1-10", "11-50", "51-200", "201-1000", "1000+")
COMPANY_SIZE_SHARE = np.array([0.30, 0.28, 0.22, 0.13, 0.07])
COMPANY_SIZE_QUALITY = np.array([-0.2, 0.1, 0.25, 0.15, 0.0])
#: Median days a deal takes to close, by company size: big companies decide slowly.
COMPANY_SIZE_CLOSE_DAYS = np.array([18.0, 28.0, 42.0, 65.0, 95.0])
COMPANY_SIZE_DEAL_VALUE = np.array([900.0, 2500.0, 6000.0, 15000.0, 40000.0])
JOB_TITLES: tuple[str, ...] = (
    "Owner", "CEO", "Head of Marketing", "Marketing Manager", "Operations Manager",
    "Procurement Lead", "Analyst", "Intern",
)
JOB_TITLE_SHARE = np.array([0.10, 0.06, 0.12, 0.20, 0.17, 0.10, 0.17, 0.08])
JOB_TITLE_QUALITY = np.array([0.45, 0.45, 0.35, 0.15, 0.1, 0.3, -0.2, -0.8])
#: Multiplier on how long a deal takes to close: owners decide fast, procurement slowly.
JOB_TITLE_CLOSE_SPEED = np.array([0.5, 0.6, 0.85, 1.1, 1.1, 1.8, 1.4, 2.0])

CATEGORIES: tuple[str, ...] = ("software", "hardware", "services", "supplies", "training", "accessories")
CATEGORY_SHARE = np.array([0.22, 0.15, 0.18, 0.20, 0.10, 0.15])
CATEGORY_PRICE = np.array([1.0, 2.2, 1.6, 0.5, 1.2, 0.35])
PRODUCTS_PER_CATEGORY = 3
PRODUCT_NAMES: tuple[str, ...] = tuple(
    f"{c[:3].upper()}-{tier}" for c in CATEGORIES for tier in ("BASIC", "PLUS", "PRO")
)
ORDER_CHANNELS: tuple[str, ...] = ("web", "mobile_app", "phone", "sales_rep", "marketplace")
ORDER_CHANNEL_SHARE_B2C = np.array([0.55, 0.28, 0.05, 0.0, 0.12])
ORDER_CHANNEL_SHARE_B2B = np.array([0.35, 0.05, 0.15, 0.45, 0.0])

DEAL_OWNERS: tuple[str, ...] = tuple(f"rep_{i:02d}" for i in range(1, 13))

FIRST_NAMES: tuple[str, ...] = (
    "ana", "ben", "carla", "david", "elena", "finn", "grace", "hugo", "isla", "jack", "kate",
    "liam", "maria", "noah", "olivia", "pablo", "quinn", "rosa", "sam", "tara", "umar", "vera",
    "will", "xena", "yusuf", "zoe", "aoife", "sean", "lukas", "lena", "jonas", "lucia", "javier",
    "emma", "oliver", "mia", "james", "sofia", "ciara", "niamh",
)
LAST_NAMES: tuple[str, ...] = (
    "smith", "jones", "taylor", "brown", "murphy", "kelly", "walsh", "byrne", "mueller", "schmidt",
    "schneider", "fischer", "garcia", "martinez", "lopez", "sanchez", "johnson", "williams",
    "miller", "davis", "wilson", "moore", "clark", "lewis", "walker", "young", "king", "wright",
    "hall", "green", "weber", "wagner", "becker", "ruiz", "diaz", "moreno", "ryan", "obrien",
    "doyle", "evans",
)
EMAIL_PROVIDERS: tuple[str, ...] = (
    "gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "proton.me", "gmx.de",
    "eircom.net",
)
COMPANY_WORDS: tuple[str, ...] = (
    "acme", "northwind", "bluepeak", "ironbridge", "greenfield", "silverline", "redwood",
    "brightpath", "oakridge", "harbour", "summit", "lumen", "vertex", "keystone", "meridian",
    "cobalt", "pioneer", "atlas", "nimbus", "orchard",
)
COMPANY_SUFFIXES: tuple[str, ...] = ("ltd", "group", "labs", "logistics", "retail", "systems", "co")
COUNTRY_TLD: tuple[str, ...] = ("co.uk", "com", "ie", "de", "es")
